"""The tests do not read the developer's shell (issue 13): a session-wide fixture
in tests/conftest.py clears CHATSTREAM_*, OPENAI_*, SECRET_KEY before any test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: What a developer's shell might hold; each would change the apps under test.
LEAKY_SHELL = {
    "CHATSTREAM_ACCESS_PASSWORD": "x",
    "CHATSTREAM_REDIS_URL": "redis://127.0.0.1:1",
    "CHATSTREAM_ADAPTER": "openai",
    "CHATSTREAM_RATE_LIMIT": "1/hour",
    "OPENAI_API_KEY": "sk-from-the-shell",
    "SECRET_KEY": "from the shell",
}


def test_unit_tests_pass_with_a_leaky_shell():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "tests/unit/test_views.py",
            "tests/unit/test_access.py",
            "tests/unit/test_config.py",
            "tests/package/test_host_app.py",
        ],
        cwd=ROOT,
        env={**os.environ, **LEAKY_SHELL},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]


def test_this_process_sees_none_of_it():
    assert not [name for name in os.environ if name.startswith(("CHATSTREAM_", "OPENAI_"))]
    assert "SECRET_KEY" not in os.environ
