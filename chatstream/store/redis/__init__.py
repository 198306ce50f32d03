"""The stream store on Redis Streams (see :mod:`.store`)."""

from .store import RedisStreamStore

__all__ = ["RedisStreamStore"]
