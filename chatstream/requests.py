"""Parse and check a prompt submission (before any header is sent).

Accepts the seed's ``{"prompt": "..."}`` or a multi-turn
``{"messages": [{"role": ..., "content": ...}, ...]}``, plus optional
``model`` and ``options``. Every problem raises a
:class:`~chatstream.errors.RequestError` with a clear message.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import cast

from flask import Request

from .adapters.base import Message
from .errors import BadRequest
from .errors import PayloadTooLarge
from .errors import UnsupportedMediaType

ROLES = ("system", "user", "assistant")
KNOWN_KEYS = {"prompt", "messages", "model", "options"}


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
    payload = request.get_json(silent=True)
    if payload is None:
        raise BadRequest("The request body is not valid JSON.", code="invalid_json")
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
