"""Keyboard, focus, the modal drawer, screen-reader structure and a shell that owns scrolling."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page
from playwright.sync_api import Route
from playwright.sync_api import expect

from tests.browser.chat import WAIT_MS
from tests.browser.chat import ChatPage
from tests.browser.chat import conversations
from tests.browser.chat import import_conversations
from tests.browser.chat import watch_announcements

pytestmark = pytest.mark.browser


@pytest.fixture
def chat(page: Page) -> ChatPage:
    return ChatPage(page).open()


@pytest.mark.parametrize("width", [390, 1280])
def test_wheel_over_the_shell_never_scrolls_the_document(page: Page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 800})
    chat = ChatPage(page).open()
    long_chat = conversations(1, prefix="long")
    long_chat[0]["messages"] *= 15  # 30 messages: the message list scrolls
    import_conversations(page, long_chat)
    if width < 820:
        page.locator("#sidebar-open").click()
    chat.conversations.get_by_role("button", name="long chat 0", exact=True).click()
    expect(chat.messages).to_have_count(30)
    targets = ["#chat-title", ".composer", ".statusline", "#scroller"]
    if width > 820:
        targets += [".sidebar-foot", ".brand"]
    for selector in targets:
        box = page.locator(selector).bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        for delta in (600, 600, -300):
            page.mouse.wheel(0, delta)
            page.wait_for_timeout(50)  # let the wheel land (not a timing assertion)
        scroll = page.evaluate(
            "() => [window.scrollY, document.scrollingElement.scrollTop,"
            " document.documentElement.scrollHeight - innerHeight]"
        )
        assert scroll[:2] == [0, 0], selector
        assert scroll[2] <= 0, selector  # the document is never taller than the window
    assert page.locator("#scroller").evaluate("s => s.scrollTop") > 0  # the list did scroll


def test_regenerate_by_keyboard_moves_focus_to_stop_then_to_copy(chat: ChatPage) -> None:
    chat.set_options(tokens=3, delay_ms=0)
    chat.send("first")
    chat.wait_done()
    chat.set_options(tokens=30, delay_ms=40)
    regenerate = chat.last_answer.locator("button[data-action=regenerate]")
    regenerate.focus()
    chat.page.keyboard.press("Enter")
    expect(chat.stop_button).to_be_focused()
    chat.wait_done()
    expect(chat.last_answer.locator("button[data-action=copy]")).to_be_focused()


def test_streaming_never_takes_focus_from_a_link_or_copy_button_in_the_answer(
    chat: ChatPage,
) -> None:
    # The demo quotes the prompt first, then writes ~180 more pieces: the quote
    # (with its link and code block) is a finished block while the rest streams.
    chat.set_options(delay_ms=70)
    chat.send("Read [the docs](https://example.com/docs)\n\n```python\nprint('hi')\n```")
    answer = chat.last_answer
    expect(answer.locator(".md > p")).to_have_count(2, timeout=WAIT_MS)  # quote finished
    grown = """([n]) => document.querySelector(
      '#messages li.msg-assistant:last-child .md').textContent.length > n"""
    for selector, marker in (("blockquote a", "link"), ("blockquote .copy-code", "copy")):
        control = answer.locator(selector)
        control.focus()
        control.evaluate("(el, m) => { el.dataset.marker = m; }", marker)
        length = answer.locator(".md").evaluate("md => md.textContent.length")
        chat.page.wait_for_function(grown, arg=[length + 60], timeout=WAIT_MS)  # 60+ chars later
        assert chat.page.evaluate("document.activeElement.dataset.marker") == marker
    assert answer.get_attribute("data-status") == "streaming"
    chat.wait_done()
    assert chat.page.evaluate("document.activeElement.dataset.marker") == "copy"


def test_mobile_drawer_is_a_modal_dialog(page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    chat = ChatPage(page).open()
    chat.set_options(tokens=2, delay_ms=0)
    chat.send("hello")
    chat.wait_done()
    opener = page.locator("#sidebar-open")
    opener.focus()
    page.keyboard.press("Enter")
    sidebar = page.locator("#sidebar")
    expect(sidebar).to_have_attribute("role", "dialog")
    expect(sidebar).to_have_attribute("aria-modal", "true")
    expect(page.locator("#new-chat")).to_be_focused()
    assert page.locator("#main-col").evaluate("m => m.inert") is True
    inside = []
    for _ in range(12):  # Tab round the dialog: focus never leaves it
        page.keyboard.press("Tab")
        inside.append(
            page.evaluate("document.getElementById('sidebar').contains(document.activeElement)")
        )
    for _ in range(4):
        page.keyboard.press("Shift+Tab")
        inside.append(
            page.evaluate("document.getElementById('sidebar').contains(document.activeElement)")
        )
    assert all(inside)
    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()
    expect(opener).to_be_focused()
    assert sidebar.get_attribute("role") == "complementary"
    assert page.locator("#main-col").evaluate("m => m.inert") is False


def test_messages_are_labelled_regions_and_an_error_is_announced_once(chat: ChatPage) -> None:
    chat.set_options(tokens=2, delay_ms=0)
    chat.send("hi")
    chat.wait_done()
    expect(chat.page.get_by_role("article", name="You")).to_have_count(1)
    expect(chat.page.get_by_role("article", name="Assistant")).to_have_count(1)
    expect(chat.announcer).to_contain_text("Answer complete.")  # said before we listen

    watch_announcements(chat.page)

    def failing(route: Route) -> None:
        route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream"},
            body=(
                'id: s1.1\nevent: newToken\ndata: {"token": "partial"}\n\n'
                'id: s1.2\nevent: error\ndata: {"code": "upstream_error", '
                '"message": "The model is overloaded."}\n\n'
            ),
        )

    chat.page.route("**/api/streaming/*", failing)
    chat.send("again")
    answer = chat.wait_done("error")
    expect(chat.announcer).to_have_text("Error: The model is overloaded.")
    assert chat.page.evaluate("window.__announcements") == ["Error: The model is overloaded."]
    assert chat.page.locator("[role=alert]:not([hidden])").count() == 0
    expect(answer.locator(".msg-note")).to_contain_text("The model is overloaded.")
