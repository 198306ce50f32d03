"""Parse and check request bodies and a prompt submission (before any header is sent).

Accepts the seed's ``{"prompt": "..."}`` or a multi-turn
``{"messages": [{"role": ..., "content": ...}, ...]}``, plus optional
``model`` and ``options``. Every problem raises a
:class:`~chatstream.errors.RequestError` with a clear message.

Every JSON body of the app (prompts, ``POST /login``) is decoded by
:class:`StrictJSONProvider`, Flask's JSON provider hook, with ``orjson``:
strict RFC 8259 and well-formed Unicode. It refuses, as a JSON ``400
invalid_json``, what the standard library would let through to fail later:

* a lone surrogate (``"\\ud800"``) in a key or a value: Python holds it in a
  ``str`` but cannot encode it as UTF-8, so an echo in an error message, a log
  line or a token sent to the model would fail mid-way;
* nesting deeper than :data:`MAX_JSON_DEPTH`: the standard library's decoder
  recurses (``RecursionError`` at about 1,000 levels), and so do ``repr`` and
  anything else that walks the value afterwards;
* ``NaN`` and ``Infinity``, which are not JSON.

It raises a :class:`~chatstream.errors.BadRequest` rather than a
``ValueError``, so even ``request.get_json(silent=True)`` answers ``400``.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import cast

import orjson
from flask import Request
from flask.json.provider import DefaultJSONProvider

from .adapters.base import Message
from .errors import BadRequest
from .errors import PayloadTooLarge
from .errors import UnsupportedMediaType

ROLES = ("system", "user", "assistant")
KNOWN_KEYS = {"prompt", "messages", "model", "options"}

#: Arrays and objects nested deeper than this are refused. The API's own
#: bodies nest 3 levels (``messages[i].content``); 32 leaves room for options.
MAX_JSON_DEPTH = 32


def strict_loads(data: str | bytes) -> Any:
    """Decode a JSON body strictly (module docstring).

    :raises BadRequest: ``invalid_json``.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}.", code="invalid_json") from None
    if isinstance(value, dict | list) and _depth_exceeds(value, MAX_JSON_DEPTH):
        raise BadRequest(
            f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.", code="invalid_json"
        )
    return value


def strict_json(request: Request) -> Any:
    """The request's JSON body, decoded by :func:`strict_loads` whatever the
    app's JSON provider (chatstream mounted in a host app keeps the host's).

    :raises BadRequest: ``invalid_json``.
    """
    return strict_loads(request.get_data(cache=True))


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, decoding with ``orjson`` (module docstring).

    The standalone app's provider, so that every JSON body it reads is strict.
    """

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        if kwargs:  # Flask's own callers with hooks (the session serializer)
            return super().loads(s, **kwargs)
        return strict_loads(s)


def _depth_exceeds(value: dict[str, Any] | list[Any], limit: int) -> bool:
    # Iterative on purpose: a recursive walk is what fails on deep input.
    # orjson already stopped at 1,024 levels, so this is bounded.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


@dataclass(frozen=True)
class Submission:
    messages: list[Message]
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


def read_json(request: Request) -> dict[str, Any]:
    """The request body as a JSON object.

    :raises UnsupportedMediaType: not ``application/json``.
    :raises BadRequest: malformed JSON, or not an object.
    """
    if not request.is_json:
        raise UnsupportedMediaType("Send the prompt as JSON with 'Content-Type: application/json'.")
    payload = strict_json(request)
    if not isinstance(payload, dict):
        raise BadRequest("The JSON body must be an object.", code="invalid_shape")
    return payload


def _messages(payload: dict[str, Any]) -> list[Message]:
    if "messages" in payload and "prompt" in payload:
        raise BadRequest("Send either 'prompt' or 'messages', not both.", code="invalid_shape")
    if "prompt" in payload:
        prompt = payload["prompt"]
        if not isinstance(prompt, str):
            raise BadRequest("'prompt' must be a string.", code="invalid_shape")
        return [{"role": "user", "content": prompt}]
    raw = payload.get("messages")
    if not isinstance(raw, list) or not raw:
        raise BadRequest(
            "Send 'prompt' (a string) or 'messages' (a non-empty list).",
            code="invalid_shape",
        )
    messages: list[Message] = []
    for index, item in enumerate(raw):
        if (
            not isinstance(item, dict)
            or item.get("role") not in ROLES
            or not isinstance(item.get("content"), str)
            or set(item) - {"role", "content"}
        ):
            raise BadRequest(
                f"messages[{index}] must be {{'role': 'system'|'user'|'assistant', "
                "'content': string}.",
                code="invalid_shape",
            )
        messages.append(cast(Message, {"role": item["role"], "content": item["content"]}))
    return messages


def parse_submission(payload: dict[str, Any], *, max_chars: int, max_messages: int) -> Submission:
    """Check a prompt submission.

    :raises BadRequest: wrong shape or empty prompt.
    :raises PayloadTooLarge: conversation over ``max_chars`` or ``max_messages``.
    """
    unknown = set(payload) - KNOWN_KEYS
    if unknown:
        raise BadRequest(f"Unknown field(s): {', '.join(sorted(unknown))}.", code="invalid_shape")
    messages = _messages(payload)
    if messages[-1]["role"] != "user":
        raise BadRequest("The last message must come from the user.", code="invalid_shape")
    if not messages[-1]["content"].strip():
        raise BadRequest("The prompt is empty.", code="empty_prompt")
    if len(messages) > max_messages:
        raise PayloadTooLarge(
            f"The conversation has {len(messages)} messages; the limit is {max_messages}."
        )
    size = sum(len(m["content"]) for m in messages)
    if size > max_chars:
        raise PayloadTooLarge(
            f"The conversation is {size} characters long; the limit is {max_chars}."
        )
    model = payload.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string.", code="invalid_shape")
    options = payload.get("options") or {}
    if not isinstance(options, dict):
        raise BadRequest("'options' must be an object.", code="invalid_shape")
    return Submission(messages, model, options)
