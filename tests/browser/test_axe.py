"""axe-core on the chat page: light and dark, phone and desktop.

axe-core comes from npm (tests/browser/package.json, installed by ``make
test``); it is injected into a context made with ``bypass_csp=True`` since the
page's CSP forbids other scripts. The page shows a realistic conversation: the
demo's markdown answer (heading, quote, list, code block) quoting a wide table,
a server-side end, an error with Retry, and on phones also the open drawer.
Each run prints its violations by impact; none may be serious or critical.

    .venv/bin/python -m pytest tests/browser/test_axe.py -s
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from playwright.sync_api import Browser
from playwright.sync_api import Page
from playwright.sync_api import Route
from playwright.sync_api import expect

from tests.browser.chat import STREAM_GET
from tests.browser.chat import TABLE
from tests.browser.chat import ChatPage
from tests.browser.chat import run_axe

pytestmark = pytest.mark.browser


def build_conversation(page: Page) -> ChatPage:
    chat = ChatPage(page)
    chat.set_options()
    chat.send(TABLE)
    chat.wait_done()

    def ended(route: Route) -> None:
        route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream"},
            body='id: a.1\nevent: newToken\ndata: {"token": "Half an answer"}\n\n'
            'id: a.2\nevent: end\ndata: {"finish_reason": "cancelled"}\n\n',
        )

    page.route(STREAM_GET, ended)
    chat.send("and then the server gave up")
    chat.wait_done("ended")
    page.unroute(STREAM_GET)

    def failed(route: Route) -> None:
        route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream"},
            body='id: b.1\nevent: error\ndata: {"code": "upstream_error", '
            '"message": "The model is overloaded."}\n\n',
        )

    page.route(STREAM_GET, failed)
    chat.send("and an error")
    chat.wait_done("error")
    page.unroute(STREAM_GET)
    return chat


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [390, 1280])
def test_axe_finds_nothing_serious(
    browser: Browser,
    base_url: str,
    axe_script: Path,
    artifacts_dir: Path,
    scheme: str,
    width: int,
) -> None:
    context = browser.new_context(
        base_url=base_url,
        bypass_csp=True,
        color_scheme=scheme,
        reduced_motion="reduce",
        viewport={"width": width, "height": 844 if width < 600 else 860},
    )
    try:
        page = context.new_page()
        ChatPage(page).open()
        runs = {"empty": run_axe(page, axe_script)}
        build_conversation(page)
        page.screenshot(path=artifacts_dir / f"axe-chat-{scheme}-{width}.png")
        runs["chat"] = run_axe(page, axe_script)
        if width < 820:
            page.locator("#sidebar-open").click()
            expect(page.locator("#sidebar")).to_have_attribute("role", "dialog")
            page.screenshot(path=artifacts_dir / f"axe-drawer-{scheme}-{width}.png")
            runs["drawer"] = run_axe(page, axe_script)
        for name, violations in runs.items():
            by_impact = Counter(v["impact"] for v in violations)
            print(f"\naxe {scheme} {width}px {name}: {dict(by_impact) or 'no violations'}")
            for v in violations:
                print(f"  {v['impact']:>9} {v['id']} x{v['nodes']}: {v['targets']}")
        (artifacts_dir / f"axe-{scheme}-{width}.json").write_text(json.dumps(runs, indent=2))
        serious = [v for vs in runs.values() for v in vs if v["impact"] in ("serious", "critical")]
        assert serious == []
    finally:
        context.close()
