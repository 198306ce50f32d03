"""Configuration: defaults, then the environment, then a test mapping; checked.

In a Flask app's config every chatstream setting is namespaced: the key is the
environment variable's name, ``CHATSTREAM_HEARTBEAT_S``, and
``OPENAI_API_KEY``/``OPENAI_BASE_URL`` become ``CHATSTREAM_OPENAI_API_KEY``/
``CHATSTREAM_OPENAI_BASE_URL``, so chatstream shares a host app's config
without taking its names. ``SECRET_KEY`` is the app's own. The code reads
them through :class:`chatstream.appconfig.Settings`, a view that drops the
prefix (``settings["HEARTBEAT_S"]``).

:func:`load_environment` copies the environment into an app config
(``CHATSTREAM_*`` values are parsed as JSON when they can be, so ``15`` is a
number, as :meth:`flask.Config.from_prefixed_env` does; secrets are kept
verbatim). :func:`validate` checks each key and raises
:class:`~chatstream.errors.ConfigError` with one line naming the variable,
its value and what is allowed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

PREFIX = "CHATSTREAM"


@dataclass(frozen=True)
class Setting:
    default: Any
    kind: type
    low: float | None = None
    high: float | None = None
    help: str = ""


#: Every ``CHATSTREAM_*`` setting, its default and its bounds (README lists them).
SETTINGS: dict[str, Setting] = {
    "ADAPTER": Setting(None, str, help="demo | openai | langchain | package.module:factory"),
    "MODEL": Setting(None, str, help="default model name"),
    "MODELS": Setting(None, list, help="allowed models, comma-separated"),
    "HEARTBEAT_S": Setting(15.0, float, 0.05, 3600, "seconds between `: ping` comments"),
    "RETRY_MS": Setting(1000, int, 0, 600_000, "EventSource reconnection delay"),
    "STREAM_TTL_S": Setting(300.0, float, 1, 86_400, "a finished stream stays readable"),
    "MAX_PROMPT_CHARS": Setting(32_000, int, 1, 10_000_000, "conversation size limit"),
    "MAX_MESSAGES": Setting(200, int, 1, 10_000, "messages per conversation"),
    "MAX_STREAMS": Setting(1000, int, 1, 1_000_000, "running generations per worker"),
    "MAX_EVENTS": Setting(20_000, int, 3, 10_000_000, "events kept per stream"),
    "GENERATION_TIMEOUT_S": Setting(300.0, float, 0.1, 86_400, "overall generation time"),
    "ATTACH_GRACE_S": Setting(30.0, float, 0.1, 3600, "cancel when no reader attaches"),
    "DETACH_GRACE_S": Setting(30.0, float, 0.1, 3600, "cancel when all readers left"),
    "SWEEP_S": Setting(1.0, float, 0.01, 60, "janitor period"),
    "START_MAX_LAG_MS": Setting(
        None, int, 0, 10_000, "event-loop lag above which new generations wait (0: off)"
    ),
    "PACING_TICK_MS": Setting(5, int, 1, 1000, "how often the event-loop lag is measured"),
    "DEMO_DELAY_MS": Setting(30, int, 0, 10_000, "demo model delay between tokens"),
    "OPENAI_TIMEOUT_S": Setting(60.0, float, 0.1, 3600, "upstream read timeout"),
    "OPENAI_MAX_RETRIES": Setting(2, int, 0, 10, "SDK retries on 429/5xx"),
    "OPENAI_CONNECT_TIMEOUT_S": Setting(10.0, float, 0.1, 600, "upstream connect timeout"),
    "OPENAI_POOL_SIZE": Setting(None, int, 1, 1_000_000, "upstream connections (MAX_STREAMS)"),
    "OPENAI_KEEPALIVE": Setting(None, int, 0, 1_000_000, "idle upstream connections kept"),
    "OPENAI_HTTP": Setting("llhttp", str, help="llhttp | httpx: the upstream HTTP transport"),
    "OPENAI_MAX_EVENT_BYTES": Setting(1 << 20, int, 1024, 1 << 30, "cap on one upstream line"),
    "OPENAI_MAX_RESPONSE_BYTES": Setting(64 << 20, int, 1024, 1 << 40, "cap on one upstream body"),
    "LANGCHAIN_FACTORY": Setting(None, str, help="package.module:factory, factory(model)"),
    "LANGCHAIN_BLOCKING": Setting(False, bool, help="run LangChain models on native threads"),
    "LOG_FORMAT": Setting("json", str, help="json | text"),
    "REDIS_URL": Setting(None, str, help="redis://... to share streams (else in-memory)"),
    "REDIS_BEAT_S": Setting(1.0, float, 0.05, 60, "owner heartbeat and presence refresh"),
    "REDIS_LIVENESS_S": Setting(5.0, float, 0.2, 600, "owner silent this long = dead"),
    "REDIS_OUTAGE_BUDGET_S": Setting(30.0, float, 1, 3600, "Redis outage running streams survive"),
    "PROXY_FIX": Setting(None, dict, help="proxy hops: N, or x_for=1,x_proto=1"),
    "ACCESS_PASSWORD": Setting(None, str, help="shared password for the page and API"),
    "API_TOKENS": Setting(None, list, help="bearer tokens, comma-separated"),
    "RATE_LIMIT": Setting("60/minute", str, help="POSTs per client address, e.g. 30/minute"),
    "MAX_STREAMS_PER_CLIENT": Setting(8, int, 0, 1_000_000, "running generations per address"),
    "AUTH_FAILURE_LIMIT": Setting(
        "10/minute;100/day", str, help="failed logins and bearer tokens per address"
    ),
    "HEADER_TIMEOUT_S": Setting(10.0, float, 0.5, 3600, "a new connection's request headers"),
    "MAX_CONNECTIONS_PER_ADDRESS": Setting(
        100, int, 0, 1_000_000, "open connections per client address and worker (gunicorn)"
    ),
    "SESSION_COOKIE": Setting("chatstream_session", str, help="chatstream's own cookie name"),
    "ALLOWED_HOSTS": Setting(None, list, help="host names served, comma-separated; * for any"),
    "MAX_STORE_MB": Setting(256, int, 1, 1_000_000, "MiB of events kept per worker (memory store)"),
}

#: Settings read from their conventional, unprefixed names.
PLAIN_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "SECRET_KEY")

#: Secrets are read as the exact text of their variable (``from_prefixed_env``
#: would turn a password like ``123456`` into a number) and never echoed.
SECRET_SETTINGS = ("ACCESS_PASSWORD", "API_TOKENS")

#: One rate of Flask-Limiter's notation (``limits`` ``parse_many``), e.g. ``30/minute``.
_RATE = re.compile(r"[0-9]+\s*(?:/|per)\s*(?:[0-9]+\s*)?(?:second|minute|hour|day|month|year)s?")
#: ``CHATSTREAM_RATE_LIMIT`` values that turn rate limiting off.
RATE_LIMIT_OFF = ("0", "off", "false", "none", "no")


def defaults() -> dict[str, Any]:
    return {name: s.default for name, s in SETTINGS.items()}


def load_environment(
    config: MutableMapping[str, Any], environ: Mapping[str, str] | None = None
) -> None:
    """Copy the environment's chatstream settings into an app config, namespaced.

    :param config: a Flask app's config (keys as :func:`config_key` names them).
    :param environ: the environment (``os.environ`` by default).
    """
    environ = os.environ if environ is None else environ
    for name, raw in environ.items():
        if not name.startswith(CONFIG_PREFIX):
            continue
        if name.removeprefix(CONFIG_PREFIX) in SECRET_SETTINGS:
            config[name] = raw
            continue
        try:
            config[name] = json.loads(raw)
        except ValueError:
            config[name] = raw
    for name in PLAIN_ENV:
        value = environ.get(name)
        if value:
            config[config_key(name)] = value


def _env_name(key: str) -> str:
    return key if key in PLAIN_ENV else f"{PREFIX}_{key}"


def _bad(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{_env_name(key)}={value!r} is invalid: expected {allowed}")


#: ``werkzeug.middleware.proxy_fix.ProxyFix`` arguments ``PROXY_FIX`` may set.
PROXY_FIX_KEYS = ("x_for", "x_proto", "x_host", "x_port", "x_prefix")


def _proxy_fix(key: str, value: Any) -> dict[str, int] | None:
    """ProxyFix arguments from ``N`` or ``x_for=1,x_host=1``.

    ``N`` trusts N hops of X-Forwarded-For and X-Forwarded-Proto only; the
    explicit form names each header's hop count; unnamed ones are 0 (not
    trusted: ProxyFix's own defaults would trust X-Forwarded-Proto). All 0 is
    off (``None``).

    :raises ConfigError: anything else.
    """
    allowed = f"a number of proxies, or {'=N,'.join(PROXY_FIX_KEYS)}=N"
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"x_for": value, "x_proto": value}
    elif isinstance(value, str) and value.strip().isdigit():
        value = {"x_for": int(value), "x_proto": int(value)}
    elif isinstance(value, str):
        try:
            pairs = [part.split("=") for part in value.split(",")]
            value = {name.strip(): int(count) for name, count in pairs}
        except ValueError:
            raise _bad(key, value, allowed) from None
    if not isinstance(value, Mapping) or not all(
        name in PROXY_FIX_KEYS and type(count) is int and 0 <= count <= 10
        for name, count in value.items()
    ):
        raise _bad(key, value, allowed)
    counts = {name: int(value.get(name, 0)) for name in PROXY_FIX_KEYS}
    return counts if any(counts.values()) else None


def _rate_limit(key: str, value: Any) -> str:
    """``"off"``, or rates such as ``30/minute;500/day`` (lower-cased).

    :raises ConfigError: anything else.
    """
    text = str(value).strip().lower()
    if value is False or text in RATE_LIMIT_OFF:
        return "off"
    if isinstance(value, str) and all(_RATE.fullmatch(p.strip()) for p in re.split("[,;|]", text)):
        return text
    raise _bad(key, value, "a rate such as 30/minute or 1000/day, or off")


def _secret(key: str, setting: Setting, value: Any) -> Any:
    """The access password, or the list of API tokens; never echoed in errors.

    :raises ConfigError: not a string, or a token shorter than 16 characters.
    """
    if setting.kind is str:
        if isinstance(value, str) and value.strip():
            return value.strip()
        raise _bad(key, "<hidden>", "a non-empty string")
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(items, list | tuple) and all(isinstance(v, str) for v in items):
        items = [v.strip() for v in items if v.strip()]
        if items and all(len(v) >= 16 and not any(c.isspace() for c in v) for v in items):
            return items
    raise _bad(key, "<hidden>", "comma-separated tokens of 16+ characters without spaces")


def _check(key: str, setting: Setting, value: Any) -> Any:
    if setting.kind is dict:
        return _proxy_fix(key, value)
    if key in ("RATE_LIMIT", "AUTH_FAILURE_LIMIT"):
        return _rate_limit(key, value)
    if key in SECRET_SETTINGS:
        return _secret(key, setting, value)
    if setting.kind is bool:
        flag = {"true": True, "1": True, "false": False, "0": False}.get(str(value).lower())
        if flag is None:
            raise _bad(key, value, "true or false")
        return flag
    if setting.kind is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
            raise _bad(key, value, "a comma-separated list of names")
        return list(value)
    if setting.kind is str:
        if not isinstance(value, str) or not value.strip():
            raise _bad(key, value, f"a non-empty string ({setting.help})")
        return value.strip()
    number_kind = setting.kind
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _bad(key, value, "a number")
    try:
        number = number_kind(value)
        if number_kind is int and float(value) != number:
            raise ValueError
    except ValueError:
        raise _bad(key, value, "an integer" if number_kind is int else "a number") from None
    if (setting.low is not None and number < setting.low) or (
        setting.high is not None and number > setting.high
    ):
        raise _bad(key, value, f"a number from {setting.low:g} to {setting.high:g}")
    return number


def validate(config: MutableMapping[str, Any]) -> None:
    """Check and normalise every setting in place; derive the dependent ones.

    :raises ConfigError: naming the first bad variable.
    """
    for key, setting in SETTINGS.items():
        value = config.get(key)
        if value is None or value == "":
            config[key] = setting.default
            continue
        config[key] = _check(key, setting, value)
    if config["ADAPTER"] is None:
        config["ADAPTER"] = "openai" if config.get("OPENAI_API_KEY") else "demo"
    if config["MODEL"] is None:
        config["MODEL"] = "demo" if config["ADAPTER"] == "demo" else "gpt-4o-mini"
    if config["START_MAX_LAG_MS"] is None:
        config["START_MAX_LAG_MS"] = default_start_max_lag_ms(config["ADAPTER"])
    if config["MODELS"] is None:
        config["MODELS"] = [config["MODEL"]]
    elif config["MODEL"] not in config["MODELS"]:
        raise ConfigError(
            f"CHATSTREAM_MODEL={config['MODEL']!r} is invalid: expected one of "
            f"CHATSTREAM_MODELS {config['MODELS']}"
        )
    if config["REDIS_LIVENESS_S"] < 2 * config["REDIS_BEAT_S"]:
        raise _bad(
            "REDIS_LIVENESS_S",
            config["REDIS_LIVENESS_S"],
            f"at least twice CHATSTREAM_REDIS_BEAT_S ({config['REDIS_BEAT_S']:g})",
        )
    if config["LOG_FORMAT"] not in ("json", "text"):
        raise _bad("LOG_FORMAT", config["LOG_FORMAT"], "json or text")
    if config["OPENAI_HTTP"] not in ("llhttp", "httpx"):
        raise _bad("OPENAI_HTTP", config["OPENAI_HTTP"], "llhttp or httpx")
    if config["HEARTBEAT_S"] * 1000 < 50:
        raise _bad("HEARTBEAT_S", config["HEARTBEAT_S"], "at least 0.05")
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = secrets.token_hex(32)
        config["SECRET_KEY_GENERATED"] = True


#: Start pacing's threshold when ``START_MAX_LAG_MS`` is not set, per adapter.
#: The openai adapter's start costs a worker about a millisecond of CPU (the
#: SDK's request): a burst of starts takes the core from the running streams,
#: so new ones wait while the loop runs 3 ms late (bench/README: every U1 row
#: ahead of the peers). The demo's starts cost little and its tokens come from
#: timers: pacing only delayed its first tokens (S1-1000 TTFT p99 0.9 s -> 4.2 s).
PACED_ADAPTERS = {"openai": 3}


def default_start_max_lag_ms(adapter: str) -> int:
    """``START_MAX_LAG_MS`` for ``adapter`` when the setting is not given (0: off)."""
    return PACED_ADAPTERS.get(adapter, 0)


def summary(config: Mapping[str, Any]) -> str:
    """One log line describing the effective setup (no secrets)."""
    return (
        f"adapter={config['ADAPTER']} model={config['MODEL']} "
        f"models={','.join(config['MODELS'])} "
        f"store={'redis' if config['REDIS_URL'] else 'memory'} "
        f"access={_access(config)} rate_limit={config['RATE_LIMIT']} "
        f"start_pacing={_pacing(config)}"
    )


def _pacing(config: Mapping[str, Any]) -> str:
    lag = config.get("START_MAX_LAG_MS")
    return f"{lag}ms" if lag else "off"


def _access(config: Mapping[str, Any]) -> str:
    kinds = {"password": "ACCESS_PASSWORD", "tokens": "API_TOKENS"}
    return "+".join(kind for kind, key in kinds.items() if config.get(key)) or "open"


# -- the namespaced view ---------------------------------------------------------

#: Prefix of chatstream's keys in an app config (the environment variables' names).
CONFIG_PREFIX = f"{PREFIX}_"
#: Namespaced in an app config besides :data:`SETTINGS`.
NAMESPACED_EXTRA = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "SECRET_KEY_GENERATED")


def config_key(key: str) -> str:
    """The app-config key of a chatstream setting (``HEARTBEAT_S`` -> ``CHATSTREAM_HEARTBEAT_S``).

    Any other key (``SECRET_KEY``, ``TESTING``, an already prefixed one) is unchanged.
    """
    return CONFIG_PREFIX + key if key in SETTINGS or key in NAMESPACED_EXTRA else key


def namespaced(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """``mapping`` with chatstream's setting names given their prefix (for test configs)."""
    return {config_key(key): value for key, value in mapping.items()}


def env_name(key: str) -> str:
    """The environment variable that sets ``key`` (``HEARTBEAT_S``: ``CHATSTREAM_HEARTBEAT_S``)."""
    return _env_name(key)
