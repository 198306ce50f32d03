"""chatstream's settings inside a Flask app config: the namespaced view.

:class:`Settings` reads and writes the ``CHATSTREAM_*`` keys of an app config
without their prefix; :func:`prepare` fills in the defaults and checks them
(:func:`chatstream.config.validate`); :func:`masked` shows them with secrets
hidden (``chatstream check``). The settings themselves, their defaults and
their checks live in :mod:`chatstream.config`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import MutableMapping
from typing import Any

from .config import CONFIG_PREFIX
from .config import SECRET_SETTINGS
from .config import SETTINGS
from .config import config_key
from .config import defaults
from .config import env_name
from .config import validate


class Settings(MutableMapping[str, Any]):
    """chatstream's settings inside an app config, read and written without the prefix.

    ``settings["HEARTBEAT_S"]`` is ``config["CHATSTREAM_HEARTBEAT_S"]``; other
    keys (``SECRET_KEY``, ``SESSION_COOKIE_SECURE``) are the app's own. The view
    is live: a change to the app config is seen at once.

    :param config: the app config.
    """

    def __init__(self, config: MutableMapping[str, Any]) -> None:
        self.app_config = config

    def __getitem__(self, key: str) -> Any:
        return self.app_config[config_key(key)]

    def __setitem__(self, key: str, value: Any) -> None:
        self.app_config[config_key(key)] = value

    def __delitem__(self, key: str) -> None:
        del self.app_config[config_key(key)]

    def __iter__(self) -> Iterator[str]:
        for key in self.app_config:
            name = key.removeprefix(CONFIG_PREFIX)
            if key.startswith(CONFIG_PREFIX) and config_key(name) == key:
                yield name

    def __len__(self) -> int:
        return sum(1 for _ in self)


def prepare(config: MutableMapping[str, Any]) -> Settings:
    """Fill in the defaults of an app config's chatstream settings and check them.

    :returns: the checked settings, as a view of ``config``.
    :raises ConfigError: naming the first bad variable.
    """
    for key, value in defaults().items():
        config.setdefault(config_key(key), value)
    settings = Settings(config)
    validate(settings)
    return settings


#: Settings whose values :func:`masked` never shows.
MASKED = (*SECRET_SETTINGS, "OPENAI_API_KEY", "SECRET_KEY")


def masked(settings: Mapping[str, Any]) -> dict[str, str]:
    """The effective settings by environment variable, secrets masked (``chatstream check``)."""
    out: dict[str, str] = {}
    for key in (*SETTINGS, "OPENAI_API_KEY", "OPENAI_BASE_URL", "SECRET_KEY"):
        value = settings.get(key)
        if key in MASKED and value:
            shown = (
                "<generated per process>"
                if settings.get("SECRET_KEY_GENERATED") and key == "SECRET_KEY"
                else "<set, hidden>"
            )
        elif key == "REDIS_URL" and value:
            shown = re.sub(r"//([^@/]*):[^@/]*@", r"//\1:***@", str(value))
        elif isinstance(value, list):
            shown = ",".join(map(str, value))
        elif isinstance(value, dict):
            shown = ",".join(f"{k}={v}" for k, v in value.items() if v)
        else:
            shown = "" if value is None else str(value)
        out[env_name(key)] = shown
    return out
