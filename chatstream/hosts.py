"""Host validation: answer only to the host names this deployment serves.

A browser's same-origin rules protect a site by its *name*. DNS rebinding
points a name the attacker owns (``evil.example``) at this server's address,
so the attacker's page talks to us "same-origin": its ``Host`` and ``Origin``
both say ``evil.example:<port>`` and the origin check in
:mod:`chatstream.access` cannot tell. Refusing every ``Host`` that is not one
of ours closes that hole (and keeps poisoned hosts out of logs and URLs).

The list is ``CHATSTREAM_ALLOWED_HOSTS`` (comma-separated names, ports
ignored; ``.example.com`` also allows every subdomain; ``*`` allows any). It
becomes Flask's ``TRUSTED_HOSTS``, which werkzeug checks on ``request.host``.
Unset, the default follows where the server listens, ``HOST`` (what
``gunicorn.conf.py`` binds):

* a loopback address (``make serve``, gunicorn behind nginx on the same
  machine): only loopback names, :data:`LOOPBACK_HOSTS`. A reverse proxy that
  passes the public ``Host`` then needs the public name in the list.
* anything else or unset (``0.0.0.0``: the Procfile on Heroku, containers):
  any host, with a warning at start-up. Heroku's router only forwards the
  app's own domains, so it already validates the host; elsewhere set the list.

A request naming another host gets a JSON ``400 untrusted_host``
(:func:`chatstream.errors.register_error_handlers`), before any view runs.

Config keys: ``ALLOWED_HOSTS``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask import request
from werkzeug.wsgi import get_host

log = logging.getLogger(__name__)

#: What a browser may call a server that listens on loopback. werkzeug 3.1
#: cannot match a bracketed IPv6 literal (its ``host_is_trusted`` cuts the
#: entry at the first ``:``), so ``http://[::1]:8000`` is refused: use
#: ``localhost``.
LOOPBACK_HOSTS = ("localhost", ".localhost", "127.0.0.1", "[::1]")


def _is_loopback(bind_host: str) -> bool:
    name = bind_host.strip().strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def trusted_hosts(allowed: list[str] | None, bind_host: str | None) -> list[str] | None:
    """The ``TRUSTED_HOSTS`` list for Flask (``None``: any host).

    :param allowed: ``CHATSTREAM_ALLOWED_HOSTS`` (``None`` when unset).
    :param bind_host: the ``HOST`` the server binds (``None`` when unset).
    """
    if allowed:
        return None if "*" in allowed else [h.lower() for h in allowed]
    if bind_host and _is_loopback(bind_host):
        return list(LOOPBACK_HOSTS)
    return None


def resolve(config: Mapping[str, Any]) -> list[str] | None:
    """The trusted hosts for these settings (``None``: any), warning when open."""
    hosts = trusted_hosts(config.get("ALLOWED_HOSTS"), os.environ.get("HOST"))
    if hosts is None and not config.get("ALLOWED_HOSTS") and not config.get("TESTING"):
        log.warning(
            "CHATSTREAM_ALLOWED_HOSTS is not set and the server does not listen on "
            "loopback only: every Host is accepted. Set it to this site's name(s)."
        )
    return hosts


def guard(hosts: list[str]) -> Callable[[], None]:
    """A ``before_request`` hook refusing any ``Host`` outside ``hosts``.

    For chatstream's blueprint in a host app, whose own routes (and
    ``TRUSTED_HOSTS``) stay the host's business.
    """

    def check_host() -> None:
        get_host(request.environ, trusted_hosts=hosts)  # raises SecurityError

    return check_host


def init_hosts(app: Flask, hosts: list[str] | None) -> None:
    """Set ``TRUSTED_HOSTS`` and check the host before every other hook.

    Flask checks ``TRUSTED_HOSTS`` while matching the URL, after the
    ``before_request`` hooks; the first hook here raises the refusal at once,
    so no other hook (rate limits, access, its login redirect) sees a foreign
    host.
    """
    app.config["TRUSTED_HOSTS"] = hosts
    if hosts is not None:
        app.before_request_funcs.setdefault(None, []).insert(0, _check_host)


def _check_host() -> None:
    # ``request.host`` raises werkzeug's SecurityError for a host not in
    # ``request.trusted_hosts`` (Flask copied TRUSTED_HOSTS there).
    request.host  # noqa: B018
