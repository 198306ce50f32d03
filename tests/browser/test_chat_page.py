"""The chat page in a real browser (headless Chromium) against real gunicorn.

Nothing here asserts on speed: answers that must be sampled mid-stream are made
slow with the demo's ``delay_ms``, and every wait is a Playwright wait on a DOM
condition.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse
from playwright.sync_api import ConsoleMessage
from playwright.sync_api import Dialog
from playwright.sync_api import Page
from playwright.sync_api import Request as PwRequest
from playwright.sync_api import Route
from playwright.sync_api import expect

from tests.browser.chat import SAVED_STATE_JS
from tests.browser.chat import STREAM_GET
from tests.browser.chat import WAIT_MS
from tests.browser.chat import ChatPage
from tests.browser.chat import fulfill_with_first_events
from tests.browser.chat import is_stream_post
from tests.browser.chat import is_stream_post_response
from tests.browser.chat import numbers
from tests.browser.chat import watch_announcements
from tests.support.proxy import CuttingProxy

pytestmark = pytest.mark.browser


@pytest.fixture
def chat(page: Page) -> ChatPage:
    return ChatPage(page).open()


def test_answer_grows_while_streaming_and_ends_with_the_full_reply(
    chat: ChatPage,
) -> None:
    # Count every change of the live region: it must speak about completion,
    # not once per token.
    watch_announcements(chat.page)
    chat.set_options(tokens=50, delay_ms=60)
    chat.send("count for me")

    answer = chat.last_answer
    expect(answer).to_have_attribute("data-status", "streaming")
    expect(chat.stop_button).to_be_visible()
    expect(chat.send_button).to_be_hidden()

    first = chat.wait_numbers_above(2)
    assert answer.get_attribute("data-status") == "streaming"
    second = chat.wait_numbers_above(first)
    assert answer.get_attribute("data-status") == "streaming"
    assert 2 < first < second < 50
    # What is shown mid-stream is always a prefix of the reply, in order.
    assert numbers(50).startswith(chat.last_text())

    chat.wait_done()
    assert chat.last_text() == numbers(50)
    expect(chat.send_button).to_be_visible()
    expect(chat.stop_button).to_be_hidden()
    expect(chat.stats).to_contain_text("first token")
    expect(chat.stats).to_contain_text("tok/s")
    # Once, when complete: how it ended, then the answer itself (not token by token).
    expect(chat.announcer).to_have_text(f"Answer complete. {numbers(50)}")
    announcements = chat.page.evaluate("window.__announcements")
    assert announcements == [f"Answer complete. {numbers(50)}"]
    assert chat.last_answer.get_attribute("aria-busy") is None


def test_markdown_is_rendered_at_most_once_per_animation_frame(
    chat: ChatPage,
) -> None:
    """Tokens arriving between two frames cost one render, not one per token."""
    # Hold every animation frame until the test runs it.
    chat.page.evaluate("""() => {
      window.__frames = [];
      window.__requested = 0;
      window.requestAnimationFrame = (cb) => {
        window.__requested += 1;
        window.__frames.push(cb);
        return window.__requested;
      };
      window.cancelAnimationFrame = () => {};
    }""")
    run_frames = "() => window.__frames.splice(0).forEach((cb) => cb(performance.now()))"
    chat.set_options(tokens=40, delay_ms=60)
    chat.send("batch me")
    # Wait until several tokens have arrived (the page saves the growing answer
    # to IndexedDB about once a second) ...
    chat.page.wait_for_function(
        # (IndexedDB reads are async: each poll starts a read and checks the last one.)
        f"""() => {{
          ({SAVED_STATE_JS})().then((s) => {{
            const m = s.conversations.length && s.conversations[0].messages[1];
            window.__savedNumbers = m ? (m.content.match(/\\d+/g) || []).length : 0;
          }});
          return (window.__savedNumbers || 0) >= 5;
        }}""",
        polling=50,  # Playwright polls on animation frames by default
        timeout=WAIT_MS,
    )
    # ... yet only one frame was asked for, and nothing is rendered before it runs.
    assert chat.page.evaluate("window.__requested") == 1
    expect(chat.last_answer.locator(".md .typing")).to_be_visible()
    chat.page.evaluate(run_frames)
    shown = chat.shown_numbers()
    assert shown >= 5
    assert numbers(40).startswith(chat.last_text())
    chat.page.wait_for_function("() => window.__requested === 2", polling=50, timeout=WAIT_MS)
    chat.page.evaluate(run_frames)
    assert chat.shown_numbers() > shown  # the token that asked for this frame
    chat.wait_done()  # `end` renders the final text at once, frame or not
    assert chat.last_text() == numbers(40)
    assert chat.page.evaluate("window.__requested") < 40


def test_demo_reply_renders_markdown_highlighting_and_copy_buttons(
    chat: ChatPage,
) -> None:
    chat.send("Please *quote* me")
    answer = chat.wait_done()
    md = answer.locator(".md")

    expect(md.locator("h2")).to_have_text("Hello from the demo model")
    expect(md.locator("blockquote")).to_contain_text("Please quote me")
    expect(md.locator("blockquote em")).to_have_text("quote")
    expect(md.locator("ul > li")).to_have_count(3)
    expect(md.locator("strong").first).to_be_visible()
    expect(md.locator("code", has_text="newToken")).to_be_visible()

    code = md.locator(".code-block pre code.hljs.language-python")
    expect(code).to_contain_text("import os")
    expect(code.locator(".hljs-keyword", has_text="import")).to_be_visible()
    expect(code.locator(".hljs-string").first).to_be_visible()
    expect(md.locator(".code-block .code-lang")).to_have_text("python")

    # The code block's copy button copies exactly the code.
    md.locator(".copy-code").click()
    expect(md.locator(".copy-code")).to_have_text("Copied")
    copied = chat.page.evaluate("navigator.clipboard.readText()")
    assert copied == code.text_content()
    assert copied.startswith("# Switch to a real model")

    # The answer's copy button copies its markdown source.
    answer.locator("button[data-action=copy]").click()
    source = chat.saved_state()["conversations"][0]["messages"][1]["content"]
    assert chat.page.evaluate("navigator.clipboard.readText()") == source
    assert source.startswith("## Hello from the demo model")


def test_markdown_tables_and_sanitizer(chat: ChatPage) -> None:
    """The renderer itself: GFM tables render; smuggled markup never survives."""
    html = chat.page.evaluate("""async () => {
      const { renderMarkdown } = await import('/static/js/markdown.js');
      const md = [
        '| lang | year |', '| --- | --- |', '| Python | 1991 |', '',
        '[bad](javascript:alert(1)) <b onclick="alert(2)">x</b>',
        '<iframe src="javascript:alert(3)"></iframe>',
      ].join('\\n');
      const div = document.createElement('div');
      div.append(renderMarkdown(md));
      return div.innerHTML;
    }""")
    # (cells carry dir="auto" and the table sits in a scrolling wrapper)
    assert re.search(r"<table[^>]*>", html) and re.search(r"<th[^>]*>lang</th>", html)
    assert re.search(r"<td[^>]*>1991</td>", html) and 'class="table-wrap"' in html
    assert "javascript:" not in re.sub(r"&lt;.*?&gt;", "", html)  # only as escaped text
    assert (
        "<iframe" not in html
        and "<b " not in html
        and "onclick" not in re.sub(r"&lt;.*?&gt;", "", html)
    )
    assert "&lt;iframe" in html  # raw HTML is shown as text


def test_xss_payload_echoed_by_the_model_does_not_execute(chat: ChatPage) -> None:
    dialogs: list[str] = []
    chat.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    payload = (
        '<img src=x onerror="window.__pwned=1;alert(1)"> '
        "<script>window.__pwned=2;alert(2)</script> "
        "[click me](javascript:window.__pwned=3) "
        '<a href="javascript:alert(4)">link</a>'
    )
    chat.send(payload)
    answer = chat.wait_done()

    # The prompt is shown exactly as typed, as text.
    bubble = chat.user_messages.last.locator(".bubble")
    assert bubble.text_content() == payload
    assert bubble.locator("*").count() == 0

    # The model's echo shows the markup as text and contains none of it.
    md = answer.locator(".md")
    quote = md.locator("blockquote")
    expect(quote).to_contain_text('<img src=x onerror="window.__pwned=1;alert(1)">')
    expect(quote).to_contain_text("<script>window.__pwned=2;alert(2)</script>")
    assert md.locator("img, script, iframe, [onerror]").count() == 0
    assert md.locator("a[href^='javascript' i]").count() == 0
    for link in md.locator("a").all():
        link.click()  # following any link the model made must not run code either

    assert chat.page.evaluate("typeof window.__pwned") == "undefined"
    assert chat.page.locator("body img, body script:not([src])").count() == 0
    assert dialogs == []


def test_stop_mid_stream_keeps_the_partial_answer_and_cancels_on_the_server(
    chat: ChatPage, base_url: str
) -> None:
    chat.set_options(tokens=200, delay_ms=60)
    with chat.page.expect_response(is_stream_post_response) as posted:
        chat.send("a long one")
    stream_url = base_url + posted.value.json()["stream_url"]
    shown = chat.wait_numbers_above(3)

    with chat.page.expect_request(lambda r: r.method == "DELETE" and r.url == stream_url):
        chat.stop_button.click()
    answer = chat.wait_done("stopped")
    expect(answer.locator(".msg-note")).to_have_text("Stopped")
    expect(chat.announcer).to_have_text("Answer stopped.")
    expect(chat.send_button).to_be_visible()

    partial = chat.last_text()
    assert len(partial.split()) >= shown
    assert numbers(200).startswith(partial) and partial != numbers(200)
    saved = chat.saved_state()["conversations"][0]["messages"][1]
    assert saved["status"] == "stopped"
    assert saved["content"].strip() == partial

    # The server cancelled the generation: its stream ends "cancelled", early.
    with (
        httpx.Client(timeout=20) as client,
        connect_sse(client, "GET", stream_url) as source,
    ):
        events = list(source.iter_sse())
    assert events[-1].event == "end"
    assert json.loads(events[-1].data)["finish_reason"] == "cancelled"
    assert sum(e.event == "newToken" for e in events) < 200
    assert chat.last_text() == partial  # nothing arrived after stopping


def test_regenerate_replaces_the_last_answer(chat: ChatPage) -> None:
    chat.set_options(tokens=4, delay_ms=0)
    chat.send("first")
    chat.wait_done()
    assert chat.last_text() == numbers(4)

    chat.set_options(tokens=7, delay_ms=0)
    with chat.page.expect_request(is_stream_post) as req:
        chat.last_answer.locator("button[data-action=regenerate]").click()
    assert req.value.post_data_json["messages"] == [{"role": "user", "content": "first"}]
    chat.wait_done()
    expect(chat.answers).to_have_count(1)
    assert chat.last_text() == numbers(7)


def test_multi_turn_sends_the_whole_conversation(chat: ChatPage) -> None:
    first = chat.send("one")
    assert first["messages"] == [{"role": "user", "content": "one"}]
    chat.wait_done()
    expect(chat.last_answer).to_contain_text("this is turn 1 of the conversation")
    reply = chat.saved_state()["conversations"][0]["messages"][1]["content"]

    second = chat.send("two\nlines")
    assert second["messages"] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": reply},
        {"role": "user", "content": "two\nlines"},
    ]
    chat.wait_done()
    expect(chat.last_answer).to_contain_text("this is turn 2 of the conversation")
    expect(chat.messages).to_have_count(4)


def test_edit_and_resend_the_last_prompt(chat: ChatPage) -> None:
    chat.set_options(tokens=3, delay_ms=0)
    chat.send("frist")
    chat.wait_done()

    chat.user_messages.last.locator("button[data-action=edit]").click()
    box = chat.page.locator(".edit-form textarea")
    expect(box).to_be_focused()
    expect(box).to_have_value("frist")
    box.fill("first")
    chat.set_options(tokens=5, delay_ms=0)
    with chat.page.expect_request(is_stream_post) as req:
        box.press("Enter")
    assert req.value.post_data_json["messages"] == [{"role": "user", "content": "first"}]
    chat.wait_done()
    expect(chat.user_messages).to_have_count(1)
    expect(chat.user_messages.last.locator(".bubble")).to_have_text("first")
    assert chat.last_text() == numbers(5)


def test_model_picker_sends_the_chosen_model(chat: ChatPage) -> None:
    picker = chat.page.locator("#model-select")
    expect(picker.locator("option")).to_have_count(2)
    picker.select_option("demo-large")
    chat.set_options(tokens=2, delay_ms=0)
    body = chat.send("hi")
    assert body["model"] == "demo-large"
    chat.wait_done()
    expect(chat.page.locator("#stats-model")).to_contain_text("demo-large")


def _watch_reconnecting(chat: ChatPage) -> None:
    chat.page.evaluate("""() => {
      window.__sawReconnecting = false;
      new MutationObserver(() => {
        if (document.querySelector('.msg-note[data-kind=reconnecting]')) {
          window.__sawReconnecting = true;
        }
      }).observe(document.getElementById('messages'), {childList: true, subtree: true});
    }""")


def _record_stream_gets(chat: ChatPage) -> list[PwRequest]:
    gets: list[PwRequest] = []
    chat.page.on(
        "request",
        lambda r: gets.append(r) if r.method == "GET" and "/api/streaming/" in r.url else None,
    )
    return gets


def test_cut_connection_resumes_after_last_event_id(chat: ChatPage, base_url: str) -> None:
    """The first connection ends after 10 events; the rest comes from the server.

    The browser's first GET is answered by the test with the server's own first
    10 events and then closed, as a dropped connection would end. Everything
    after that comes from the real server, resuming after ``Last-Event-ID``.
    """
    forwarded: list[str] = []
    connections: list[str] = []

    def cut_after_ten(route: Route) -> None:
        connections.append(route.request.url)
        if forwarded:
            route.continue_()  # reconnects go to the server untouched
            return
        fulfill_with_first_events(route, base_url, 10, forwarded)

    _watch_reconnecting(chat)
    chat.page.route(STREAM_GET, cut_after_ten)
    chat.set_options(tokens=40, delay_ms=20)
    chat.send("survive a cut")
    chat.wait_done()

    assert chat.last_text() == numbers(40)  # nothing repeated, nothing lost
    assert len(forwarded) == 10
    # One reconnection. (Playwright does not show the Last-Event-ID header that
    # Chromium adds; the exact text above proves the server resumed after it:
    # without it the server replays from the start and the text repeats.)
    assert len(connections) == 2
    assert chat.page.evaluate("window.__sawReconnecting") is True
    expect(chat.last_answer.locator(".msg-note")).to_have_count(0)


def test_graceful_restart_notice_reconnects_and_resumes(chat: ChatPage, base_url: str) -> None:
    """A server draining on SIGTERM sends ``error`` with ``reconnect: true``.

    That event has no id: the page must not treat it as a failure but let
    EventSource reconnect with the last real id and finish with the exact text.
    The first GET is answered with the server's first 8 events plus the notice
    (the bytes chatstream.shutdown.RECONNECT sends); the reconnect is real.
    """
    from chatstream.shutdown import RECONNECT

    served: list[str] = []

    def restart_after_eight(route: Route) -> None:
        if served:
            route.continue_()
            return
        fulfill_with_first_events(route, base_url, 8, served, tail=RECONNECT.decode())

    _watch_reconnecting(chat)
    chat.page.route(STREAM_GET, restart_after_eight)
    chat.set_options(tokens=30, delay_ms=20)
    chat.send("survive a restart")
    chat.wait_done()
    assert chat.last_text() == numbers(30)
    assert chat.page.evaluate("window.__sawReconnecting") is True
    expect(chat.last_answer.locator(".msg-note")).to_have_count(0)


def test_server_side_drop_mid_stream_resumes(page: Page, chat_server) -> None:
    """The network cuts the first event stream after 10 events, mid-frame.

    The page is served through a loopback TCP proxy (tests/support/proxy.py)
    that drops the first ``text/event-stream`` response after its 10th event,
    as a restarting load balancer would: the browser must discard the partial
    frame, show "Reconnecting", reconnect with ``Last-Event-ID`` and end with
    the exact text, nothing repeated.
    """
    with CuttingProxy(("127.0.0.1", chat_server.port)) as proxy:
        page.goto(proxy.url + "/")
        expect(page.locator("body.is-ready")).to_be_attached()
        chat = ChatPage(page)
        _watch_reconnecting(chat)
        gets = _record_stream_gets(chat)
        proxy.arm(after_events=10)
        chat.set_options(tokens=40, delay_ms=30)
        chat.send("survive a drop")
        chat.wait_done()

        assert proxy.cuts == 1
        assert chat.last_text() == numbers(40)
        resumed_from = [r.all_headers().get("last-event-id") for r in gets]
        assert len(resumed_from) == 2
        assert resumed_from[0] is None
        assert resumed_from[1] and 1 <= int(resumed_from[1].rsplit(".", 1)[-1]) <= 10
        assert chat.page.evaluate("window.__sawReconnecting") is True
        expect(chat.last_answer.locator(".msg-note")).to_have_count(0)


def test_server_error_event_shows_a_message_and_retry_works(chat: ChatPage) -> None:
    def broken_stream(route: Route) -> None:
        route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"},
            body=(
                'id: 1\nevent: newToken\ndata: {"token": "partial "}\n\n'
                'id: 2\nevent: error\ndata: {"code": "upstream_error", '
                '"message": "The model is overloaded."}\n\n'
            ),
        )

    chat.page.route(STREAM_GET, broken_stream)
    chat.set_options(tokens=3, delay_ms=0)
    chat.send("hello")
    answer = chat.wait_done("error")
    note = answer.locator(".msg-note.is-error")
    expect(note).to_contain_text("The model is overloaded.")
    assert note.get_attribute("role") is None  # announced once, by the status region
    assert chat.last_text() == "partial"
    expect(chat.announcer).to_contain_text("The model is overloaded.")

    chat.page.unroute(STREAM_GET)
    with chat.page.expect_request(is_stream_post) as req:
        note.get_by_role("button", name="Retry").click()
    # The failed partial answer is replaced, not sent back as history.
    assert req.value.post_data_json["messages"] == [{"role": "user", "content": "hello"}]
    chat.wait_done()
    expect(chat.answers).to_have_count(1)
    assert chat.last_text() == numbers(3)


def test_http_error_on_submit_is_readable(chat: ChatPage) -> None:
    def busy(route: Route) -> None:
        route.fulfill(
            status=503,
            headers={"Retry-After": "7"},
            content_type="application/json",
            body=json.dumps({"error": {"code": "overloaded", "message": "Too many streams."}}),
        )

    chat.page.route("**/api/streaming", busy)
    chat.send("hello")
    answer = chat.wait_done("error")
    expect(answer.locator(".msg-note")).to_contain_text("Too many streams. Try again in 7 s.")
    expect(answer.get_by_role("button", name="Retry")).to_be_visible()


def test_lapsed_login_offers_to_log_in_again(chat: ChatPage) -> None:
    chat.page.route(
        "**/api/streaming",
        lambda route: route.fulfill(
            status=401,
            content_type="application/json",
            body=json.dumps({"error": {"code": "unauthorized", "message": "Log in."}}),
        ),
    )
    chat.send("hello")
    answer = chat.wait_done("error")
    link = answer.get_by_role("link", name="Log in")
    expect(link).to_have_attribute("href", "/login?next=%2F")


def test_conversations_survive_reload_switch_and_delete(chat: ChatPage) -> None:
    chat.set_options(tokens=3, delay_ms=0)
    chat.send("alpha")
    chat.wait_done()
    chat.page.locator("#new-chat").click()
    expect(chat.messages).to_have_count(0)
    chat.set_options(tokens=4, delay_ms=0)
    chat.send("beta")
    chat.wait_done()

    chat.page.reload()
    expect(chat.conversations).to_have_count(2)
    expect(chat.page.locator("#conv-list [aria-current=page]")).to_have_text("beta")
    expect(chat.user_messages.locator(".bubble")).to_have_text(["beta"])
    assert chat.last_text() == numbers(4)

    chat.conversations.get_by_role("button", name="alpha", exact=True).click()
    expect(chat.user_messages.locator(".bubble")).to_have_text(["alpha"])
    assert chat.last_text() == numbers(3)
    expect(chat.page.locator("#chat-title")).to_have_text("alpha")

    chat.page.get_by_role("button", name="Delete conversation: beta").click()
    expect(chat.conversations).to_have_count(1)
    chat.page.reload()
    expect(chat.conversations).to_have_count(1)
    expect(chat.conversations.first).to_contain_text("alpha")


def test_reload_mid_stream_follows_the_answer_to_its_end(chat: ChatPage) -> None:
    chat.set_options(tokens=60, delay_ms=60)
    chat.send("keep going")
    shown = chat.wait_numbers_above(3)
    assert shown < 60
    chat.page.reload()
    # The page follows the same stream again (replayed from its start) ...
    expect(chat.last_answer).to_have_attribute("data-status", "streaming")
    expect(chat.stop_button).to_be_visible()
    # ... and ends with the whole answer, once.
    chat.wait_done()
    assert chat.last_text() == numbers(60)
    expect(chat.messages).to_have_count(2)
    saved = chat.saved_state()["conversations"][0]["messages"]
    assert saved[1]["content"] == numbers(60) + " "
    assert saved[1]["status"] == "done"


def test_composer_keyboard_behaviour(chat: ChatPage) -> None:
    expect(chat.prompt).to_be_focused()
    expect(chat.send_button).to_be_disabled()
    chat.prompt.type("   ")
    expect(chat.send_button).to_be_disabled()
    chat.prompt.fill("")

    height = chat.prompt.bounding_box()["height"]
    chat.prompt.type("line one")
    expect(chat.send_button).to_be_enabled()
    for n in ("two", "three", "four"):
        chat.prompt.press("Shift+Enter")
        chat.prompt.type(f"line {n}")
    expect(chat.prompt).to_have_value("line one\nline two\nline three\nline four")
    assert chat.prompt.bounding_box()["height"] > height * 2  # grows with its text
    expect(chat.messages).to_have_count(0)  # Shift+Enter never sent

    chat.set_options(tokens=2, delay_ms=0)
    with chat.page.expect_request(is_stream_post):
        chat.prompt.press("Enter")
    expect(chat.prompt).to_have_value("")
    expect(chat.send_button).to_be_disabled()
    expect(chat.user_messages.last.locator(".bubble")).to_have_text(
        "line one\nline two\nline three\nline four"
    )
    chat.wait_done()

    # Escape stops a streaming answer from the keyboard.
    chat.set_options(tokens=200, delay_ms=60)
    chat.send("more")
    chat.wait_numbers_above(1)
    chat.prompt.press("Escape")
    chat.wait_done("stopped")


def test_autoscroll_follows_unless_the_user_scrolls_up(chat: ChatPage) -> None:
    chat.page.set_viewport_size({"width": 800, "height": 500})
    # Long enough to still be streaming after the screen is full (~450 numbers)
    # on a loaded machine; the test stops it at the end.
    chat.set_options(tokens=1500, delay_ms=25)
    chat.send("fill the screen")
    scroller = chat.page.locator("#scroller")
    chat.page.wait_for_function(
        "() => { const s = document.getElementById('scroller');"
        " return s.scrollHeight > s.clientHeight * 1.5; }",
        timeout=WAIT_MS,
    )
    at_bottom = (
        "() => { const s = document.getElementById('scroller');"
        " return s.scrollHeight - s.scrollTop - s.clientHeight < 60; }"
    )
    chat.page.wait_for_function(at_bottom, timeout=WAIT_MS)
    expect(chat.page.locator("#jump")).to_be_hidden()

    scroller.hover()
    chat.page.mouse.wheel(0, -2000)
    jump = chat.page.locator("#jump")
    expect(jump).to_be_visible()
    top = scroller.evaluate("s => s.scrollTop")
    chat.wait_numbers_above(chat.shown_numbers() + 5)  # more text arrives...
    assert scroller.evaluate("s => s.scrollTop") == top  # ...and the view stays put

    jump.click()
    chat.page.wait_for_function(at_bottom, timeout=WAIT_MS)
    expect(jump).to_be_hidden()
    chat.wait_numbers_above(chat.shown_numbers() + 5)
    chat.page.wait_for_function(at_bottom, timeout=WAIT_MS)  # following again
    chat.stop_button.click()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [390, 1280])
def test_screenshots(page: Page, artifacts_dir: Path, scheme: str, width: int) -> None:
    """Light/dark, phone/desktop screenshots; also: no CSP violations, no JS errors."""
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error" or "Content Security Policy" in msg.text:
            problems.append(f"console {msg.type}: {msg.text}")

    page.on("console", on_console)
    page.set_viewport_size({"width": width, "height": 844 if width < 600 else 860})
    # Reduced motion: no transitions half-way through in the pictures.
    page.emulate_media(color_scheme=scheme, reduced_motion="reduce")
    chat = ChatPage(page).open()
    page.screenshot(path=artifacts_dir / f"empty-{scheme}-{width}.png")

    chat.set_options(tokens=6, delay_ms=0)
    chat.send("What is chatstream?")
    chat.wait_done()
    chat.set_options()
    chat.send("Show me how to switch to a real model,\nwith a code example.")
    chat.wait_done()
    page.screenshot(path=artifacts_dir / f"chat-{scheme}-{width}.png")
    if width < 600:
        page.locator("#sidebar-open").click()
        expect(page.locator("#sidebar")).to_be_visible()
        page.screenshot(path=artifacts_dir / f"sidebar-{scheme}-{width}.png")
        page.keyboard.press("Escape")
        expect(page.locator("#sidebar")).to_be_hidden()
    assert problems == []


def test_dialogs_are_never_opened_by_ordinary_use(page: Page) -> None:
    """Deleting a conversation never opens alert/confirm dialogs."""
    seen: list[Dialog] = []
    page.on("dialog", lambda d: (seen.append(d), d.dismiss()))
    chat = ChatPage(page).open()
    chat.set_options(tokens=2, delay_ms=0)
    chat.send("x")
    chat.wait_done()
    page.get_by_role("button", name="Delete conversation: x").click()
    expect(chat.conversations).to_have_count(0)
    expect(page.locator("#empty-state")).to_be_visible()
    assert seen == []
