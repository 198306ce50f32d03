"""The chat page behind ``CHATSTREAM_ACCESS_PASSWORD``: log in, chat, log out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser
from playwright.sync_api import Page
from playwright.sync_api import expect

from tests.browser.chat import ChatPage
from tests.browser.chat import numbers
from tests.browser.chat import run_axe
from tests.browser.conftest import SERVER_ENV
from tests.support.server import GunicornServer

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    env = {**SERVER_ENV, "CHATSTREAM_ACCESS_PASSWORD": "open sesame"}
    with GunicornServer(env, log_dir=tmp_path_factory.mktemp("locked")) as srv:
        yield srv


def test_log_in_chat_and_log_out(page: Page, locked_server: GunicornServer) -> None:
    page.goto(locked_server.url + "/")
    password = page.get_by_label("Access password")
    expect(password).to_be_focused()

    password.fill("wrong")
    password.press("Enter")
    expect(page.get_by_role("alert")).to_have_text("Wrong password.")

    page.get_by_label("Access password").fill("open sesame")
    page.get_by_role("button", name="Log in").click()
    chat = ChatPage(page)
    expect(page.locator("body.is-ready")).to_be_attached()
    chat.set_options(tokens=3, delay_ms=0)
    chat.send("behind a password")
    chat.wait_done()
    assert chat.last_text() == numbers(3)

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("Access password")).to_be_visible()
    page.goto(locked_server.url + "/")
    expect(page.get_by_label("Access password")).to_be_visible()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_login_page_has_no_axe_violations(
    browser: Browser, locked_server: GunicornServer, axe_script: Path, scheme: str
) -> None:
    context = browser.new_context(bypass_csp=True, color_scheme=scheme)
    try:
        page = context.new_page()
        page.goto(locked_server.url + "/")
        page.get_by_label("Access password").fill("wrong")
        page.get_by_label("Access password").press("Enter")  # the error state too
        expect(page.get_by_role("alert")).to_be_visible()
        violations = run_axe(page, axe_script)
        print(f"\naxe login {scheme}: {[(v['impact'], v['id']) for v in violations]}")
        assert violations == []
    finally:
        context.close()
