"""The WSGI application for gunicorn: ``chatstream.wsgi:app`` (what ``chatstream serve`` runs)."""

from __future__ import annotations

import sys

from flask import Flask

from . import create_app
from .errors import ConfigError


def load() -> Flask:
    """The standalone app from the environment, or exit naming the bad setting.

    One clear line instead of a traceback; exit code 3 is gunicorn's "worker
    failed to boot", which stops the master too.
    """
    try:
        return create_app()
    except ConfigError as exc:
        print(f"chatstream: configuration error: {exc.message}", file=sys.stderr, flush=True)
        sys.exit(3)


app = load()
