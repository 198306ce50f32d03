"""gunicorn settings for this checkout: ``gunicorn -c gunicorn.conf.py wsgi:app``.

The settings live in the package (``chatstream/gunicorn_conf.py``), so an
installed chatstream has them too (``gunicorn -c python:chatstream.gunicorn_conf``
or ``chatstream serve``). This file re-exports them for the Procfile and
``make serve``; put new settings in the package module.
"""

from chatstream.gunicorn_conf import *  # noqa: F403
