"""HTTP views. Views never import ``chatstream.adapters``.

The extension (:class:`chatstream.extension.Chatstream`) mounts these child
blueprints under its one blueprint ``chatstream``:

* ``api`` (``prompts.py`` submits and cancels, ``events.py`` streams), so
  ``url_for(".stream")`` works from both;
* ``page`` (``pages.py`` the chat page, ``auth.py`` its login form), with the
  page's templates and static files from the package;
* ``ops`` (``ops.py``: ``/healthz``, ``/readyz``, ``/metrics``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from flask import Blueprint
from jinja2 import BaseLoader
from jinja2 import FileSystemLoader
from jinja2 import PrefixLoader
from werkzeug.utils import cached_property


def _data_folder(name: str) -> str:
    """The repository's top-level ``templates/`` or ``static/``, through the package.

    setup.cfg installs them as the data subpackages ``chatstream.templates``
    and ``chatstream.static`` (``package_dir``), so they are found the same way
    from a wheel and from an editable install. A checkout run without being
    installed (a Heroku-style build installs requirements.txt only) has no
    such subpackage: there the folders sit next to the package.
    """
    try:
        return str(resources.files(f"chatstream.{name}"))
    except ModuleNotFoundError:
        return str(Path(__file__).resolve().parents[2] / name)


TEMPLATES = _data_folder("templates")
STATIC = _data_folder("static")


class PageBlueprint(Blueprint):
    """Templates under ``chatstream/`` (``chatstream/index.html``), so a host
    app's own ``index.html`` never replaces the chat page's."""

    @cached_property
    def jinja_loader(self) -> BaseLoader | None:
        return PrefixLoader({"chatstream": FileSystemLoader(TEMPLATES)})


api = Blueprint("api", __name__)
page = PageBlueprint("page", __name__, static_folder=STATIC, static_url_path="/static")
