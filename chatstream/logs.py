"""Logging: one JSON object per line, with the request id.

Every request gets an id: the caller's ``X-Request-ID`` when it is sane
(what a proxy such as Heroku's router or nginx ``$request_id`` sends), else a
new one; it is echoed in the response and added to every log record made
while the request is handled. ``CHATSTREAM_LOG_FORMAT=text`` gives plain lines
for local development.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from flask import Blueprint
from flask import Response
from flask import g
from flask import has_request_context
from flask import request

_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extra fields}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context() and "request_id" in g:
            record.request_id = g.request_id
        return True


def configure(log_format: str) -> None:
    """Give the ``chatstream`` logger one stderr handler (once per process)."""
    logger = logging.getLogger("chatstream")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if any(getattr(h, "_chatstream", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler._chatstream = True  # type: ignore[attr-defined]
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RequestIdFilter())
    logger.addHandler(handler)


def init_request_ids(app: Blueprint) -> None:
    """Assign, log and echo a request id for every request of chatstream's blueprint."""

    @app.before_request
    def _assign() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _SANE_ID.fullmatch(incoming) else uuid.uuid4().hex

    @app.after_request
    def _echo(response: Response) -> Response:
        if "request_id" in g:
            response.headers["X-Request-ID"] = g.request_id
        return response
