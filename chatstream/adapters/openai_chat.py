"""Any OpenAI-compatible chat server through the official ``openai`` SDK.

``OPENAI_BASE_URL`` points it at OpenAI, Ollama, vLLM, llama.cpp's server and
the like. Streams with ``stream=True`` and ``include_usage``. The request, its
auth, base URL, retries (429 and 5xx, ``max_retries``) and status errors are
the SDK's (its generic ``client.post``); the body is read raw and decoded by
:mod:`~chatstream.adapters.chat_chunks`, bounded and without a pydantic model
per chunk. :meth:`close` closes the HTTP stream (the upstream stops
generating, no more tokens are paid for). Errors become
:mod:`chatstream.errors` upstream errors with a clear code
(:mod:`~chatstream.adapters.upstream_errors`).

HTTP goes through the SDK's httpx client over
:class:`~chatstream.adapters.upstream_http.LlhttpTransport` (keep-alive
connections, responses parsed by llhttp: reading a streamed chunk costs
about 3 µs of CPU above the socket read, against 21 µs through httpx's own
transport); ``OPENAI_HTTP=httpx`` keeps httpx's
transport, in pools of at most 32 connections
(:mod:`~chatstream.adapters.upstream_pool` says why), and so does an
``HTTP(S)_PROXY`` that applies. Either way connections are reused across
generations; size them for the streams one worker runs
(``OPENAI_POOL_SIZE``, default ``MAX_STREAMS``; every running stream holds
one connection).

Config keys: ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_TIMEOUT_S``,
``OPENAI_MAX_RETRIES``, ``OPENAI_CONNECT_TIMEOUT_S``, ``OPENAI_POOL_SIZE``,
``OPENAI_KEEPALIVE``, ``OPENAI_HTTP``, ``OPENAI_MAX_EVENT_BYTES``, ``OPENAI_MAX_RESPONSE_BYTES``,
``MAX_STREAMS``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

import openai

from ..concurrency import Sleeper
from .base import Finish
from .base import GenerationRequest
from .base import reject_options
from .chat_chunks import ChatChunkDecoder
from .upstream_errors import UpstreamProtocolError
from .upstream_errors import is_transport_error
from .upstream_errors import translate
from .upstream_http import LlhttpTransport
from .upstream_http import env_proxy_for
from .upstream_pool import SHARD_SIZE
from .upstream_pool import PoolShards
from .upstream_pool import create_ssl_context
from .upstream_pool import native_readability_probe

log = logging.getLogger(__name__)

#: Ask for the body as sent: the byte caps then bound what the upstream sends,
#: and no decompressor can turn one small chunk into a huge one.
_HEADERS = {"Accept-Encoding": "identity"}
_USAGE = {"include_usage": True}
#: Bounds on reading the rest of a body after ``[DONE]`` (see ``_drain``).
DRAIN_S = 0.1
DRAIN_BYTES = 65_536
#: How long the rest (usage, ``[DONE]``) may take once a ``finish_reason``
#: came; past it, or if the connection drops meanwhile, the answer ends as
#: finished (see ``_after_finish``).
FINISH_GRACE_S = 2.0


class OpenAIChatAdapter:
    """One streamed chat completion."""

    def __init__(self, factory: OpenAIChatFactory) -> None:
        self._factory = factory
        self._response: Any = None
        self._closed = False
        self._grace: Sleeper | None = None  # the after-finish watchdog's

    def stream(self, request: GenerationRequest) -> Iterator[str | Finish]:
        shards = self._factory.shards
        shard, create = shards.acquire()
        try:
            yield from self._stream(request, create)
        finally:
            shards.release(shard)

    def _stream(
        self, request: GenerationRequest, create: Callable[..., Any]
    ) -> Iterator[str | Finish]:
        factory = self._factory
        try:
            response = create(
                {
                    "model": request.model,
                    "messages": list(request.messages),
                    "stream": True,
                    "stream_options": _USAGE,
                }
            )
        except Exception as exc:
            if self._closed:
                return
            if isinstance(exc, openai.APIError) or is_transport_error(exc):
                raise translate(exc, streaming=False) from exc
            raise
        self._response = response
        driver = request.driver
        decoder = factory.decoder(
            pause=functools.partial(driver.sleep, 0),
            on_finish=functools.partial(self._after_finish, request),
        )
        try:
            if self._closed:
                return
            body = response.iter_raw()
            yield from decoder.body(response.headers, body)
            if decoder.done:
                self._drain(body, request)
        except UpstreamProtocolError as exc:
            if self._closed:
                return
            log.warning("upstream protocol error: %s", exc.code)
            raise
        except Exception as exc:
            if self._closed:  # our own close() interrupted the read
                return
            if decoder.finished and is_transport_error(exc):
                # The text was complete; only usage and [DONE] are missing.
                log.warning("upstream stopped after finish_reason: %s", type(exc).__name__)
            elif isinstance(exc, openai.APIError) or is_transport_error(exc):
                raise translate(exc, streaming=True) from exc
            else:
                raise
        finally:
            if self._grace is not None:
                self._grace.interrupt()
            response.close()
        yield Finish(decoder.reason, decoder.usage)

    def _after_finish(self, request: GenerationRequest) -> None:
        """A ``finish_reason`` came without ``[DONE]``: give the rest :data:`FINISH_GRACE_S`.

        OpenAI sends the usage chunk and ``[DONE]`` right after it. An
        upstream that sends neither and holds the connection would otherwise
        turn a complete answer into ``upstream_timeout`` after the read
        timeout (60 s by default). The watchdog closes the response instead,
        and the answer ends as finished, without usage.
        """
        self._grace = self._close_after(FINISH_GRACE_S, request)

    def _close_after(self, seconds: float, request: GenerationRequest) -> Sleeper:
        """Close the response in ``seconds`` unless the returned sleeper is
        interrupted first (a watchdog greenlet or thread)."""
        sleeper = request.driver.sleeper()
        response = self._response

        def watchdog() -> None:
            if not sleeper.sleep(seconds):
                response.close()

        request.driver.spawn(watchdog)
        return sleeper

    def _drain(self, body: Iterator[bytes], request: GenerationRequest) -> None:
        """Read what follows ``[DONE]`` (the body's last chunk), so the
        connection goes back to the pool instead of being closed.

        httpx closes a connection whose response is closed unread; the SDK's
        sync ``Stream`` does just that after ``[DONE]``, so every generation
        paid a new TCP (and TLS) connection. An upstream that sends ``[DONE]``
        and then neither ends the body nor closes must not hold the answer:
        a watchdog closes the response after :data:`DRAIN_S` (as the SDK's
        async client bounds its own drain) and at most :data:`DRAIN_BYTES` are read.
        """
        sleeper = self._close_after(DRAIN_S, request)
        drained = 0
        try:
            for chunk in body:
                drained += len(chunk)
                if drained > DRAIN_BYTES:
                    break
        except Exception:  # the watchdog closed it, or the upstream dropped: no matter
            pass
        finally:
            sleeper.interrupt()

    def close(self) -> None:
        """Close the HTTP stream now; safe from another greenlet or thread."""
        self._closed = True
        if self._response is not None:
            try:
                self._response.close()
            except Exception:  # already closed or mid-read: nothing more to do
                pass


def _chat_completions(client: openai.OpenAI) -> Callable[[dict[str, Any]], Any]:
    """``POST /chat/completions`` through ``client``, streaming: returns the
    HTTP response with its body unread.

    This is the SDK's documented way to call an endpoint with a body it does
    not type (``client.post``, "Undocumented endpoints" in its README): the
    same auth, base URL, retries, timeouts and status errors as
    ``chat.completions.create``, without the per-request walk of the body
    against the SDK's TypedDicts (``maybe_transform``: about 0.3 ms of CPU per
    request, profiled in ``bench.upstream_micro``). chatstream's body is plain
    JSON it has already checked. With ``stream=True`` the SDK returns a lazy
    :class:`openai.Stream`; its ``response`` is read raw, never parsed.
    """
    post = client.post
    options: openai.RequestOptions = {"headers": _HEADERS}

    def create(body: dict[str, Any]) -> Any:
        stream = post(
            "/chat/completions",
            cast_to=object,
            body=body,
            options=options,
            stream=True,
            stream_cls=openai.Stream[Any],
        )
        return stream.response

    return create


class _PoolClient(openai.DefaultHttpxClient):
    """The SDK's default HTTP client with our pool limits.

    Closed when collected, as the SDK closes the client it makes itself
    (``SyncHttpxClientWrapper``): a factory dropped by a test or a reload
    leaves no keep-alive socket open.
    """

    def __del__(self) -> None:
        try:
            if not self.is_closed:
                self.close()
        except Exception:  # interpreter shutdown: nothing left to close
            pass


class OpenAIChatFactory:
    """Holds the SDK clients (and their connection pools) of the process."""

    name = "openai"

    def __init__(self, config: Mapping[str, Any]) -> None:
        pool = config.get("OPENAI_POOL_SIZE") or config["MAX_STREAMS"]
        keepalive = config.get("OPENAI_KEEPALIVE")
        timeout = openai.Timeout(
            config["OPENAI_TIMEOUT_S"], connect=config["OPENAI_CONNECT_TIMEOUT_S"]
        )

        # One TLS context for every shard, built here, once, with the same
        # defaults (and SSL_CERT_FILE/SSL_CERT_DIR) httpx would use per client.
        tls = create_ssl_context()
        base_url = config.get("OPENAI_BASE_URL") or None
        #: ``llhttp`` (:mod:`~chatstream.adapters.upstream_http`) or ``httpx``
        #: (the SDK's own transport; also whenever an environment proxy applies).
        self.http = config.get("OPENAI_HTTP", "llhttp")
        if self.http == "llhttp" and env_proxy_for(base_url or "https://api.openai.com/v1"):
            log.info("an HTTP(S)_PROXY applies to the model server: using httpx's transport")
            self.http = "httpx"

        def make_client(limits: Any) -> openai.OpenAI:
            if self.http == "llhttp":
                transport = LlhttpTransport(
                    tls, limits.max_connections, limits.max_keepalive_connections
                )
                http_client = _PoolClient(transport=transport)
            else:
                http_client = _PoolClient(limits=limits, verify=tls)
            return openai.OpenAI(
                api_key=config.get("OPENAI_API_KEY") or "unset",
                base_url=base_url,
                timeout=timeout,
                max_retries=config["OPENAI_MAX_RETRIES"],
                http_client=http_client,
            )

        if self.http == "httpx":
            native_readability_probe()
        keepalive = pool if keepalive is None else keepalive
        # llhttp's pool takes and returns a connection in O(1): one client
        # holds them all. httpx's scans its pool: shards bound the scan.
        shard_size = pool if self.http == "llhttp" else SHARD_SIZE
        self.shards = PoolShards(make_client, _chat_completions, pool, keepalive, shard_size)
        # The pause (a hand-back to the hub) comes from each request's driver.
        self.decoder = functools.partial(
            ChatChunkDecoder,
            max_event_bytes=config["OPENAI_MAX_EVENT_BYTES"],
            max_response_bytes=config["OPENAI_MAX_RESPONSE_BYTES"],
        )

    def __call__(self) -> OpenAIChatAdapter:
        return OpenAIChatAdapter(self)

    @property
    def client(self) -> openai.OpenAI:
        """The first SDK client (every shard's has the same settings)."""
        client: openai.OpenAI = self.shards.first()
        return client

    def close(self) -> None:
        """Close the pooled upstream connections."""
        self.shards.close()

    check_options = staticmethod(reject_options)


def factory(config: Mapping[str, Any]) -> OpenAIChatFactory:
    return OpenAIChatFactory(config)
