"""The deployment files agree with the code: app.json, Procfile, .python-version."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from chatstream import config

ROOT = Path(__file__).resolve().parents[2]
# Read by gunicorn.conf.py, not by the app.
GUNICORN_ENV = {
    "WEB_CONCURRENCY",
    "PORT",
    "HOST",
    "WORKER_CONNECTIONS",
    "GRACEFUL_TIMEOUT",
}


def test_app_json_names_only_real_settings_and_describes_each():
    app = json.loads((ROOT / "app.json").read_text())
    assert app["buildpacks"] == [{"url": "heroku/python"}]
    for name, var in app["env"].items():
        known = (
            name.removeprefix(f"{config.PREFIX}_") in config.SETTINGS
            if name.startswith(f"{config.PREFIX}_")
            else name in config.PLAIN_ENV or name in GUNICORN_ENV
        )
        assert known, f"app.json sets {name}, which nothing reads"
        assert var["description"].strip(), name
        assert "value" in var or "generator" in var or var.get("required") is False, name


def test_app_json_defaults_are_valid_settings(monkeypatch):
    app = json.loads((ROOT / "app.json").read_text())
    values = {k: v["value"] for k, v in app["env"].items() if v.get("value")}
    settings = {
        k.removeprefix("CHATSTREAM_"): json.loads(v) if v.isdigit() else v
        for k, v in values.items()
        if k.startswith("CHATSTREAM_")
    }
    checked = {**config.defaults(), **settings}
    config.validate(checked)  # raises ConfigError on a bad default
    assert checked["HEARTBEAT_S"] < 55  # the router's idle window
    assert values["WEB_CONCURRENCY"] == "1"  # more needs CHATSTREAM_REDIS_URL


def test_procfile_web_line_uses_gunicorn_conf():
    lines = (ROOT / "Procfile").read_text().splitlines()
    assert lines == ["web: gunicorn -c gunicorn.conf.py wsgi:app"]


def test_python_version_matches_the_running_interpreter_series():
    # Heroku reads .python-version (runtime.txt is deprecated there).
    version = (ROOT / ".python-version").read_text().strip()
    assert version == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert not (ROOT / "runtime.txt").exists()


def test_gunicorn_settings_turn_off_gevents_greenlet_tree_unless_asked():
    """Every stream holds two greenlets; gevent's spawn-tree records cost each ~1.3 KB."""
    import os
    import subprocess

    code = "import chatstream.gunicorn_conf, gevent\nprint(gevent.config.track_greenlet_tree)\n"
    env = {k: v for k, v in os.environ.items() if k != "GEVENT_TRACK_GREENLET_TREE"}
    for value, expected in ((None, "False"), ("true", "True")):
        if value is not None:
            env["GEVENT_TRACK_GREENLET_TREE"] = value
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        assert out.stdout.strip() == expected


GC_CHECK = """
import gc, os, sys
from chatstream import gunicorn_conf
gunicorn_conf._tune_gc()
print(gc.get_threshold()[0], gc.get_freeze_count() > 0)
"""


@pytest.mark.parametrize(("gen0", "expected"), [(None, "50000 True"), ("0", "700 False")])
def test_workers_collect_cyclic_garbage_less_often(gen0, expected):
    """The worker's gc: the app frozen out of collections and a young
    generation of 50,000 allocations (``CHATSTREAM_GC_GEN0=0``: CPython's)."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "CHATSTREAM_GC_GEN0"}
    if gen0 is not None:
        env["CHATSTREAM_GC_GEN0"] = gen0
    out = subprocess.run(
        [sys.executable, "-c", GC_CHECK], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.stdout.strip() == expected, out.stderr[-2000:]
