"""LLM adapters: a list of messages in, an iterator of text tokens out.

``base`` defines the protocol and how an adapter is chosen from config;
``bridge`` turns callback-style producers into that iterator; ``demo`` is the
offline default; ``openai_chat`` speaks to any OpenAI-compatible server.
"""
