"""WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``."""

import sys

from chatstream import create_app
from chatstream.errors import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    # One clear line naming the variable, instead of a traceback; exit code 3
    # is gunicorn's "worker failed to boot", which stops the master too.
    print(f"chatstream: configuration error: {exc.message}", file=sys.stderr, flush=True)
    sys.exit(3)
