"""Every dependency floor in setup.cfg is the version ``make test-min`` installs."""

from __future__ import annotations

import configparser
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def floors(lines: str) -> dict[str, str]:
    out = {}
    for line in lines.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        for spec in requirement.specifier:
            if spec.operator == ">=":
                out[requirement.name.lower()] = spec.version
    return out


def test_constraints_pin_exactly_the_floors_of_the_base_and_the_redis_extra():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    declared = floors(setup["options"]["install_requires"])
    declared |= floors(setup["options.extras_require"]["redis"])
    pinned = {}
    for line in (ROOT / ".ci" / "constraints-min.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pinned[name.strip().lower()] = version.strip()
    assert pinned == declared
    assert "redis" not in floors(setup["options"]["install_requires"])


def test_ci_runs_the_floors_job():
    assert "make test-min" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "-c $(MIN_CONSTRAINTS)" in makefile and "tests/unit tests/live" in makefile
