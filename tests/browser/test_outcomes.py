"""How an answer ends, in honest words: "Stopped" only for the user's own Stop.

The long-cut test runs its own server with a 1 s detach grace: the browser's
stream is cut (its reconnect is held by the test, so no reader reaches the
server), the server gives up on the answer, and the held reconnect then reaches
the real server, which replays the end it decided. Event ids are opaque strings
to the page (another branch makes them ``<tag>.<seq>``); the routed streams here
use such ids.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page
from playwright.sync_api import Route
from playwright.sync_api import expect

from tests.browser.chat import STREAM_GET
from tests.browser.chat import WAIT_MS
from tests.browser.chat import ChatPage
from tests.browser.chat import fulfill_with_first_events
from tests.browser.chat import is_stream_post
from tests.browser.chat import numbers
from tests.browser.chat import watch_announcements
from tests.browser.conftest import SERVER_ENV
from tests.support.client import wait_until
from tests.support.server import GunicornServer

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def impatient_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    env = {**SERVER_ENV, "CHATSTREAM_DETACH_GRACE_S": "1", "CHATSTREAM_SWEEP_S": "0.2"}
    with GunicornServer(env, log_dir=tmp_path_factory.mktemp("impatient")) as srv:
        yield srv


def test_a_cut_longer_than_the_grace_ends_server_side_not_stopped(
    page: Page, impatient_server: GunicornServer
) -> None:
    base = impatient_server.url
    held: list[Route] = []
    served: list[str] = []

    def cut_then_hold(route: Route) -> None:
        if not served:
            fulfill_with_first_events(route, base, 5, served)  # then the connection ends
        else:
            held.append(route)  # the reconnect waits here: no reader reaches the server

    page.goto(base + "/")
    expect(page.locator("body.is-ready")).to_be_attached()
    chat = ChatPage(page)
    watch_announcements(page)
    page.route(STREAM_GET, cut_then_hold)
    chat.set_options(tokens=400, delay_ms=50)
    chat.send("a long answer over a bad line")
    page.wait_for_function("() => true")  # let Playwright dispatch the route handlers
    expect(chat.last_answer.locator(".msg-note[data-kind=reconnecting]")).to_be_visible(
        timeout=WAIT_MS
    )

    def running() -> int:
        count: int = httpx.get(base + "/healthz", timeout=5).json()["running"]
        return count

    def gave_up() -> bool:
        page.wait_for_timeout(50)  # lets Playwright dispatch the held reconnect to its handler
        return running() == 0 and len(held) == 1

    wait_until(gave_up, timeout=20, interval=0.05)  # the server's janitor gave up on the answer
    assert len(held) == 1
    held[0].continue_()  # the reconnect now reaches the server: it replays the end

    answer = chat.wait_done("ended")
    note = answer.locator(".msg-note")
    expect(note).to_contain_text("The server")
    expect(note).not_to_have_text("Stopped")
    assert chat.last_text().startswith(numbers(5))
    expect(chat.announcer).to_contain_text("Answer ended by the server.")
    announced = page.evaluate("window.__announcements")
    assert not any("stopped" in text.lower() for text in announced)
    regenerate = answer.get_by_role("button", name="Regenerate")
    expect(regenerate).to_be_visible()
    page.unroute(STREAM_GET)
    chat.set_options(tokens=3, delay_ms=0)
    with page.expect_request(is_stream_post):
        regenerate.click()
    chat.wait_done()
    assert chat.last_text() == numbers(3)


def fulfil_stream(page: Page, body: str) -> None:
    page.route(
        STREAM_GET,
        lambda route: route.fulfill(
            status=200, headers={"Content-Type": "text/event-stream"}, body=body
        ),
    )


@pytest.mark.parametrize(
    ("terminal", "status", "words"),
    [
        ('event: end\ndata: {"finish_reason": "length"}', "length", "Cut off at the length limit"),
        (
            'event: end\ndata: {"finish_reason": "cancelled"}',
            "ended",
            "The server ended this answer",
        ),
        (
            'event: error\ndata: {"code": "no_reader", "message": "No reader came back."}',
            "ended",
            "disconnected for too long",
        ),
        (
            'event: error\ndata: {"code": "server_shutdown", "message": "restarting"}',
            "ended",
            "The server restarted",
        ),
        (
            'event: error\ndata: {"code": "generation_interrupted", "message": "gone"}',
            "ended",
            "The server was interrupted",
        ),
    ],
)
def test_each_server_side_end_has_its_own_words_and_regenerate(
    page: Page, terminal: str, status: str, words: str
) -> None:
    chat = ChatPage(page).open()
    fulfil_stream(
        page,
        'id: k3f.1\nevent: newToken\ndata: {"token": "half an "}\n\n'
        'id: k3f.2\nevent: newToken\ndata: {"token": "answer"}\n\n'
        f"id: k3f.3\n{terminal}\n\n",
    )
    chat.send("hello")
    answer = chat.wait_done(status)
    expect(answer.locator(".msg-note")).to_contain_text(words)
    assert chat.last_text() == "half an answer"  # opaque string ids: nothing lost
    expect(answer.get_by_role("button", name="Regenerate")).to_be_visible()
    assert "stopped" not in chat.announcer.text_content().lower()
