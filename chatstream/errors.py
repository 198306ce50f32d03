"""The one exception tree of chatstream, and the JSON error handlers.

::

    ChatstreamError                 code, message
    ├── ConfigError                 a bad setting; stops start-up
    ├── RequestError                status (4xx/5xx), rendered as JSON before headers
    │   ├── BadRequest              400 bad_request / invalid_json / empty_prompt / ...
    │   │                           (also untrusted_host, malformed_body: see the handlers)
    │   ├── Unauthorized            401 unauthorized / wrong_password (+ WWW-Authenticate)
    │   ├── Forbidden               403 cross_origin
    │   ├── NotFound                404 stream_not_found
    │   ├── PayloadTooLarge         413 payload_too_large
    │   ├── UnsupportedMediaType    415 unsupported_media_type
    │   ├── TooManyRequests         429 rate_limited / too_many_streams (+ Retry-After)
    │   ├── Overloaded              503 overloaded / store_full (+ Retry-After)
    │   └── StoreUnavailable        503 store_unavailable (+ Retry-After)
    ├── GenerationError             after headers: becomes an ``error`` event
    │   ├── GenerationTimeout       generation_timeout
    │   ├── GenerationInterrupted   generation_interrupted
    │   └── UpstreamError           the model provider failed
    │       ├── UpstreamAuthError       upstream_auth
    │       ├── UpstreamRateLimited     upstream_rate_limited
    │       ├── UpstreamTimeout         upstream_timeout
    │       ├── UpstreamUnavailable     upstream_unavailable
    │       ├── UpstreamBadRequest      upstream_bad_request
    │       └── UpstreamDropped         upstream_dropped
    └── Cancelled                   the stream was cancelled (not an error for readers)

Before the response headers are sent, views raise a :class:`RequestError`
and the one handler registered here renders ``{"error": {"code", "message"}}``.
After the headers are sent nothing is raised into the WSGI server: the
generation runner stores an ``error`` event and ends the stream.

Two refusals come from below Flask and get their JSON here too: a ``Host``
outside ``CHATSTREAM_ALLOWED_HOSTS`` (werkzeug's ``SecurityError``, see
:mod:`chatstream.hosts`) and a body the server cannot de-chunk (gunicorn's
``ParseException`` raised while a view reads the body).
"""

from __future__ import annotations

from flask import Blueprint
from flask import Flask
from flask import Response
from flask import current_app
from flask import jsonify
from flask import request
from gunicorn.http.errors import NoMoreData
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import SecurityError


class ChatstreamError(Exception):
    """Base of every chatstream error.

    :param message: human-readable text, safe to show to a user.
    :param code: a stable machine-readable code.
    """

    code = "chatstream_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class ConfigError(ChatstreamError):
    """A configuration value is missing or invalid; start-up stops."""

    code = "config_error"


class RequestError(ChatstreamError):
    """A client request that cannot be served; rendered as a JSON 4xx/5xx."""

    status = 400
    code = "bad_request"
    headers: dict[str, str] = {}


class BadRequest(RequestError):
    status = 400
    code = "bad_request"


class Unauthorized(RequestError):
    """No valid session cookie or bearer token while access control is on.

    :param challenge: sent as ``WWW-Authenticate`` (RFC 9110, 11.6.1) when set.
    """

    status = 401
    code = "unauthorized"

    def __init__(
        self, message: str, *, code: str | None = None, challenge: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.headers = {"WWW-Authenticate": challenge} if challenge else {}


class Forbidden(RequestError):
    status = 403
    code = "cross_origin"


class NotFound(RequestError):
    status = 404
    code = "stream_not_found"


class PayloadTooLarge(RequestError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(RequestError):
    status = 415
    code = "unsupported_media_type"


class TooManyRequests(RequestError):
    """This client sent too many requests, or runs too many streams.

    :param retry_after: seconds the client should wait, sent as ``Retry-After``.
    """

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, code: str | None = None, retry_after: int = 5) -> None:
        super().__init__(message, code=code)
        self.headers = {"Retry-After": str(max(1, retry_after))}


class Overloaded(RequestError):
    """Too many running streams in this worker.

    :param retry_after: seconds the client should wait, sent as ``Retry-After``.
    """

    status = 503
    code = "overloaded"

    def __init__(self, message: str, *, code: str | None = None, retry_after: int = 5) -> None:
        super().__init__(message, code=code)
        self.headers = {"Retry-After": str(retry_after)}


class StoreUnavailable(Overloaded):
    """The stream store (Redis) cannot be reached."""

    code = "store_unavailable"


class GenerationError(ChatstreamError):
    """Generation failed after the stream started; becomes an ``error`` event."""

    code = "generation_failed"


class GenerationTimeout(GenerationError):
    code = "generation_timeout"


class GenerationInterrupted(GenerationError):
    code = "generation_interrupted"


class UpstreamError(GenerationError):
    code = "upstream_error"


class UpstreamAuthError(UpstreamError):
    code = "upstream_auth"


class UpstreamRateLimited(UpstreamError):
    code = "upstream_rate_limited"


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"


class UpstreamBadRequest(UpstreamError):
    code = "upstream_bad_request"


class UpstreamDropped(UpstreamError):
    code = "upstream_dropped"


class Cancelled(ChatstreamError):
    """The stream was cancelled (DELETE, no reader, shutdown)."""

    code = "cancelled"


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """Build the JSON error body every 4xx/5xx of chatstream uses."""
    # A message quoting client input could hold a lone surrogate, which
    # UTF-8 cannot encode: escape it rather than fail the error response.
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _snake(name: str) -> str:
    return "_".join(name.lower().split())


def register_error_handlers(app: Flask | Blueprint) -> None:
    """Render every error as JSON; never leak a traceback.

    :param app: chatstream's blueprint (its requests only), or the standalone app.
    """

    @app.errorhandler(RequestError)
    def _request_error(exc: RequestError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        headers: dict[str, str] = {}
        if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        code = "payload_too_large" if status == 413 else _snake(exc.name)
        return error_response(status, code, exc.description or exc.name, headers)

    @app.errorhandler(SecurityError)
    def _untrusted_host(exc: SecurityError) -> Response:
        host = request.headers.get("Host", "")[:100]
        message = (
            f"This server does not answer to the host {host!r}. Its operator lists "
            "the names it serves in CHATSTREAM_ALLOWED_HOSTS."
        )
        return error_response(400, "untrusted_host", message)

    @app.errorhandler(ParseException)
    @app.errorhandler(NoMoreData)
    def _malformed_body(exc: Exception) -> Response:
        # gunicorn parses a chunked body lazily, while the view reads it.
        message = f"The request body is malformed: {str(exc)[:200]}."
        return error_response(400, "malformed_body", message, {"Connection": "close"})

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        current_app.logger.exception("unhandled error")
        return error_response(500, "internal_error", "Internal server error.")
