"""LLM adapters: a list of messages in, an iterator of text tokens out.

The plug-in surface, importable from here (``CHATSTREAM_ADAPTER=
package.module:factory`` names a callable taking the app config and
returning an :class:`AdapterFactory`):

* :class:`Adapter`, :class:`AdapterFactory`: the protocols to implement;
* :class:`GenerationRequest` (what an adapter is asked, with the driver to
  sleep and spawn with), :class:`Finish` (its last item), :class:`Message`;
* :class:`CallbackBridge` and :class:`Callbacks`: turn a callback-style
  producer (``on_token``) into an adapter;
* :func:`load_factory`: how chatstream builds a factory from a spec.

Modules: ``base`` defines the protocols and how an adapter is chosen from
config; ``bridge`` turns callback-style producers into that iterator;
``demo`` is the offline default; ``openai_chat`` speaks to any
OpenAI-compatible server; ``langchain_chat`` runs a LangChain runnable.
"""

from __future__ import annotations

from .base import Adapter
from .base import AdapterFactory
from .base import Finish
from .base import FinishReason
from .base import GenerationRequest
from .base import Message
from .base import Role
from .base import load_factory
from .base import reject_options
from .bridge import CallbackBridge
from .bridge import Callbacks
from .bridge import Producer

__all__ = [
    "Adapter",
    "AdapterFactory",
    "CallbackBridge",
    "Callbacks",
    "Finish",
    "FinishReason",
    "GenerationRequest",
    "Message",
    "Producer",
    "Role",
    "load_factory",
    "reject_options",
]
