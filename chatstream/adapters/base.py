"""The adapter protocol and the registry that picks one from config.

An *adapter factory* is built once per process from the app config and
creates one :class:`Adapter` per generation. The adapter's :meth:`stream`
yields text tokens (``str``) and, last, at most one :class:`Finish`;
:meth:`close` may be called from another greenlet or thread at any time and
must make a blocked :meth:`stream` return (or raise) promptly.

Users plug in their own with ``CHATSTREAM_ADAPTER=package.module:factory``,
where ``factory(config)`` returns an :class:`AdapterFactory`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal
from typing import Protocol
from typing import TypedDict

from ..concurrency import Driver
from ..errors import BadRequest
from ..errors import ConfigError

__all__ = [
    "BUILTIN",
    "Adapter",
    "AdapterFactory",
    "Finish",
    "FinishReason",
    "GenerationRequest",
    "Message",
    "Role",
    "load_factory",
    "reject_options",
]

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "cancelled"]


class Message(TypedDict):
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """What the runner asks an adapter for.

    :param messages: the conversation so far, the last one from the user.
    :param model: one of the configured models.
    :param options: adapter-specific options, already checked by the factory.
    :param driver: the concurrency driver to sleep, spawn and hand over with.
        The runner always passes its own; requests built by hand (tests,
        scripts) get one chosen as at start-up (gevent if patched, else threads).
    """

    messages: Sequence[Message]
    model: str
    options: Mapping[str, Any] = field(default_factory=dict)
    driver: Driver = field(default_factory=Driver, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Finish:
    """The adapter's last item: why it stopped, and token usage if known."""

    reason: FinishReason = "stop"
    usage: Mapping[str, int] | None = None


class Adapter(Protocol):
    def stream(self, request: GenerationRequest) -> Iterator[str | Finish]: ...
    def close(self) -> None: ...


class AdapterFactory(Protocol):
    """Made once per process; makes one :class:`Adapter` per generation."""

    name: str

    def __call__(self) -> Adapter: ...
    def check_options(self, options: Mapping[str, Any]) -> Mapping[str, Any]: ...


BUILTIN = {
    "demo": "chatstream.adapters.demo:factory",
    "openai": "chatstream.adapters.openai_chat:factory",
    "langchain": "chatstream.adapters.langchain_chat:factory",
}


def reject_options(options: Mapping[str, Any]) -> Mapping[str, Any]:
    """The default :meth:`AdapterFactory.check_options`: no options taken.

    :raises BadRequest: when any option is given.
    """
    if options:
        raise BadRequest("This model takes no options.", code="invalid_options")
    return {}


def load_factory(spec: str, config: Mapping[str, Any]) -> AdapterFactory:
    """Build the adapter factory named by ``spec``.

    :param spec: a builtin name (``demo``, ``openai``, ``langchain``) or a
        dotted path ``package.module:callable``.
    :param config: the app config, passed to the callable.
    :raises ConfigError: the spec cannot be imported or is not callable.
    """
    path = BUILTIN.get(spec, spec)
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigError(
            f"CHATSTREAM_ADAPTER={spec!r}: expected one of "
            f"{', '.join(BUILTIN)} or 'package.module:factory'"
        )
    try:
        make: Callable[[Mapping[str, Any]], AdapterFactory] = getattr(
            importlib.import_module(module_name), attr
        )
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"CHATSTREAM_ADAPTER={spec!r}: cannot import: {exc}") from exc
    factory = make(config)
    if not hasattr(factory, "check_options"):
        factory.check_options = reject_options  # type: ignore[method-assign]
    if not getattr(factory, "name", None):
        factory.name = spec
    return factory
