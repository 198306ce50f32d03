"""The host app of test_host_app.py as a WSGI module, for a real gunicorn -k gevent."""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.package.test_host_app import host_app

app = host_app(Path(tempfile.mkdtemp(prefix="chatstream-host-")))
