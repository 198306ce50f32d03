"""WSGI entry point of this checkout: ``gunicorn -c gunicorn.conf.py wsgi:app``.

The app is built in the package (``chatstream/wsgi.py``), where an installed
chatstream finds it too.
"""

from chatstream.wsgi import app  # noqa: F401
