"""The built distributions: what the wheel and sdist carry, and the wheel
installed into a fresh venv serving the page, its assets and streams through
``chatstream serve`` started outside the checkout."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests.support.client import read_events
from tests.support.client import submit
from tests.support.client import text_of
from tests.support.server import clean_env
from tests.support.server import free_port
from tests.support.server import wait_ready

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.package

#: Every file the page may need: the repository's templates/ and static/.
ASSETS = sorted(
    str(path.relative_to(ROOT))
    for folder in ("templates", "static")
    for path in (ROOT / folder).rglob("*")
    if path.is_file()
    and path.suffix in {".html", ".css", ".js", ".md", ""}
    and path.name != ".gitkeep"
)


def test_the_wheel_carries_templates_static_and_vendored_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert ASSETS and all(f"chatstream/{asset}" in names for asset in ASSETS), sorted(names)
    assert "chatstream/py.typed" in names
    assert "chatstream/gunicorn_conf.py" in names and "chatstream/cli.py" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert not any(name.startswith(("tests/", "bench/", "templates/", "static/")) for name in names)


def test_the_wheel_metadata(wheel):
    archive = zipfile.ZipFile(wheel)
    info = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = archive.read(info).decode()
    from chatstream import __version__

    assert f"\nVersion: {__version__}\n" in metadata
    assert "License: MIT" in metadata
    requires = re.findall(r"^Requires-Dist: (.*)$", metadata, re.M)
    base = [r for r in requires if "extra ==" not in r]
    # Redis is only needed with CHATSTREAM_REDIS_URL: an extra, not the base.
    assert not any(r.startswith("redis") for r in base), base
    assert any(r.startswith("redis") and 'extra == "redis"' in r for r in requires)
    points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "chatstream = chatstream.cli:main" in points


def test_the_sdist_carries_what_the_wheel_is_built_from(sdist):
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in ("LICENSE", "CHANGELOG.md", "README.md", "MANIFEST.in", "setup.cfg"):
        assert needed in names
    assert all(asset in names for asset in ASSETS)
    assert "chatstream/py.typed" in names


# -- the wheel, installed and served -------------------------------------------------------


@pytest.fixture(scope="module")
def served(installed, tmp_path_factory):
    """``chatstream serve`` from the fresh venv, started in an empty temporary folder."""
    workdir = tmp_path_factory.mktemp("elsewhere")
    port = free_port()
    env = clean_env({"CHATSTREAM_ADAPTER": "demo", "CHATSTREAM_DEMO_DELAY_MS": "1"})
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = f"{installed}:/usr/bin:/bin"
    log_path = workdir / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(installed / "chatstream"), "serve", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_ready(proc, url + "/healthz", log_path.read_text, "chatstream serve", 60)
        yield url, installed, workdir, env
    finally:
        proc.terminate()
        proc.wait(30)


def test_the_installed_package_is_not_the_checkout(served):
    _, bin_dir, workdir, env = served
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import chatstream; print(chatstream.__file__)"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(bin_dir.parent) in where and str(ROOT) not in where


def _references(text: str, base: str) -> set[str]:
    """Static URLs an HTML page or an ES module refers to, made absolute."""
    found = set(re.findall(r'(?:href|src)="(/[^"]+)"', text))
    found |= set(re.findall(r"""(?:from|import)\s*\(?\s*['"](\.{1,2}/[^'"]+)['"]""", text))
    return {urljoin(base, ref) for ref in found}


def test_page_and_every_asset_it_references(served):
    url = served[0]
    page = httpx.get(url + "/")
    assert page.status_code == 200 and 'data-api-url="/api/streaming"' in page.text
    todo, seen = _references(page.text, url + "/"), set()
    while todo:
        asset = todo.pop()
        seen.add(asset)
        response = httpx.get(asset)
        assert response.status_code == 200, asset
        local = ROOT / asset.removeprefix(url + "/")
        assert response.content == local.read_bytes(), asset
        if asset.endswith(".js"):
            todo |= _references(response.text, asset) - seen
    # The page's module graph reaches the vendored libraries.
    assert any("/static/vendor/marked/" in asset for asset in seen)
    assert any("/static/vendor/dompurify/" in asset for asset in seen)
    assert sum("/static/js/" in asset for asset in seen) >= 5


def test_a_full_stream_and_chatstream_ask(served):
    url, bin_dir, workdir, env = served
    with httpx.Client() as client:
        events = read_events(client, submit(client, url, prompt="hello wheel"))
    assert events[-1].event == "end" and events[-1].data["finish_reason"] == "stop"
    answer = subprocess.run(
        [str(bin_dir / "chatstream"), "ask", "hello wheel", "--url", url],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout == text_of(events) + "\n"


def test_a_checkout_that_is_not_installed_still_finds_templates_and_static(tmp_path):
    """As a Heroku-style build runs it: requirements.txt installed, the checkout on the path."""
    code = (
        "import sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from chatstream import create_app\n"
        "client = create_app({'SECRET_KEY': 'x'}).test_client()\n"
        "page = client.get('/')\n"
        "with client.get('/static/js/app.js') as script:\n"
        "    print(page.status_code, script.status_code, 'data-api-url' in page.text)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["200", "200", "True"]
