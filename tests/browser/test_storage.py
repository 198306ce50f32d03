"""Saved conversations under real use: full storage, the old format, export and import.

Conversations live in IndexedDB. When the browser refuses a write, nothing
already saved may be deleted: the user is told, with choices, and the answer in
progress stays on screen. The quota is made small for real with Chromium's
``Storage.overrideQuotaForOrigin`` (DevTools protocol), and filled from another
database, as another app on the same origin would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page
from playwright.sync_api import expect

from tests.browser.chat import WAIT_MS
from tests.browser.chat import ChatPage
from tests.browser.chat import conversations
from tests.browser.chat import import_conversations
from tests.browser.chat import numbers

pytestmark = pytest.mark.browser


def seed_legacy(page: Page, base_url: str, convs: list[dict[str, Any]]) -> None:
    """Write conversations in the first version's localStorage format, before the page loads."""
    page.goto(base_url + "/healthz")  # same origin, without the page's own code
    page.evaluate(
        "s => localStorage.setItem('chatstream.conversations.v1', s)",
        json.dumps({"version": 1, "activeId": None, "conversations": convs}),
    )


FILL_LOCAL_STORAGE = """() => {
  // Another app on this origin fills localStorage to its quota.
  const chunk = 'z'.repeat(256 * 1024);
  let i = 0;
  for (; i < 200; i += 1) {
    try { localStorage.setItem('other-app-' + i, chunk); } catch { break; }
  }
  let small = 'z'.repeat(1024);
  for (let j = 0; j < 2000; j += 1) {
    try { localStorage.setItem('other-app-small-' + j, small); } catch { break; }
  }
  return i;
}"""


def test_old_localstorage_chats_move_to_indexeddb_and_survive_full_localstorage(
    page: Page, base_url: str
) -> None:
    seed_legacy(page, base_url, conversations(50))
    chat = ChatPage(page).open()
    expect(chat.conversations).to_have_count(50)
    saved = chat.saved_state()["conversations"]
    assert len(saved) == 50
    # The old copy is removed only after the new one is committed.
    assert page.evaluate("localStorage.getItem('chatstream.conversations.v1')") is None

    assert page.evaluate(FILL_LOCAL_STORAGE) > 0
    chat.page.locator("#new-chat").click()
    chat.set_options(tokens=5, delay_ms=0)
    chat.send("one more")
    chat.wait_done()
    page.reload()
    expect(page.locator("body.is-ready")).to_be_attached()
    expect(chat.conversations).to_have_count(51)
    ids = {conv["id"] for conv in chat.saved_state()["conversations"]}
    assert {f"old-{i}" for i in range(50)} <= ids
    expect(page.locator("#storage-alert")).to_be_hidden()


#: The browser refusing IndexedDB writes, as it does when the origin's quota is
#: used up. Chromium's DevTools ``Storage.overrideQuotaForOrigin`` had no effect
#: on this Chromium's reported quota (10 GB either way), and filling 10 GB is not
#: an option, so the refusal is injected where the browser raises it: the
#: conversations store's ``put`` throws ``QuotaExceededError``.
REFUSE_WRITES = """(() => {
  const put = IDBObjectStore.prototype.put;
  IDBObjectStore.prototype.put = function (...args) {
    if (window.__refuseWrites && this.name === 'conversations') {
      throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
    }
    return put.apply(this, args);
  };
})()"""


def test_refused_write_deletes_nothing_tells_the_user_and_keeps_the_answer(
    page: Page, artifacts_dir: Path
) -> None:
    page.add_init_script(REFUSE_WRITES)
    chat = ChatPage(page).open()
    import_conversations(page, conversations(50))
    expect(chat.conversations).to_have_count(50)
    assert len(chat.saved_state()["conversations"]) == 50

    page.evaluate("window.__refuseWrites = true")
    page.locator("#new-chat").click()
    chat.set_options(tokens=3000, delay_ms=0)
    chat.send("a long answer that cannot be saved")
    alert = page.locator("#storage-alert")
    expect(alert).to_be_visible(timeout=WAIT_MS)
    expect(alert).to_have_attribute("role", "alert")
    expect(alert).to_contain_text("storage for the page is full")
    expect(alert).to_contain_text("Nothing saved was deleted")
    expect(alert.get_by_role("button", name="Export all as JSON")).to_be_visible()
    expect(alert.get_by_role("button", name="Delete the 10 oldest conversations")).to_be_visible()
    chat.wait_done()
    assert chat.last_text() == numbers(3000)  # the answer is kept on screen
    expect(chat.conversations).to_have_count(51)
    assert len(chat.saved_state()["conversations"]) == 50  # nothing deleted
    page.screenshot(path=artifacts_dir / "storage-full-1280.png")

    # Export works from memory: it holds the conversation that could not be saved.
    with page.expect_download() as download:
        alert.get_by_role("button", name="Export all as JSON").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert len(exported["conversations"]) == 51
    assert exported["conversations"][0]["messages"][1]["content"] == numbers(3000) + " "

    # Room again (the flag is gone after a reload): every earlier conversation is there.
    page.reload()
    expect(page.locator("body.is-ready")).to_be_attached()
    saved = {conv["id"] for conv in chat.saved_state()["conversations"]}
    assert saved == {f"old-{i}" for i in range(50)}
    expect(alert).to_be_hidden()


def test_deleting_old_conversations_makes_room_when_the_user_chooses(page: Page) -> None:
    page.add_init_script(REFUSE_WRITES)
    chat = ChatPage(page).open()
    import_conversations(page, conversations(12))
    expect(chat.conversations).to_have_count(12)
    page.evaluate("window.__refuseWrites = true")
    page.locator("#new-chat").click()
    chat.set_options(tokens=3, delay_ms=0)
    chat.send("no room")
    alert = page.locator("#storage-alert")
    expect(alert).to_be_visible(timeout=WAIT_MS)
    chat.wait_done()
    page.evaluate("window.__refuseWrites = false")  # deleting freed the space
    alert.get_by_role("button", name="Delete the 10 oldest conversations").click()
    expect(alert).to_be_hidden()
    expect(chat.conversations).to_have_count(3)
    ids = {conv["id"] for conv in chat.saved_state()["conversations"]}
    assert ids >= {"old-10", "old-11"} and len(ids) == 3  # the newest two and "no room"


def test_export_then_import_round_trip(page: Page, tmp_path: Path) -> None:
    chat = ChatPage(page).open()
    chat.set_options(tokens=3, delay_ms=0)
    chat.send("keep me")
    chat.wait_done()
    with page.expect_download() as download:
        page.locator("#export-all").click()
    path = tmp_path / "export.json"
    download.value.save_as(path)
    data = json.loads(path.read_text())
    assert data["format"] == "chatstream.conversations"
    assert [m["content"] for m in data["conversations"][0]["messages"]] == [
        "keep me",
        numbers(3) + " ",
    ]

    page.get_by_role("button", name="Delete conversation: keep me").click()
    expect(chat.conversations).to_have_count(0)
    page.locator("#import-file").set_input_files(path)
    expect(chat.conversations).to_have_count(1)
    expect(chat.announcer).to_have_text("Imported 1 conversations.")
    page.reload()
    expect(chat.conversations).to_have_count(1)
    chat.conversations.get_by_role("button", name="keep me", exact=True).click()
    assert chat.last_text() == numbers(3)


def test_another_tab_sees_new_conversations(page: Page) -> None:
    chat = ChatPage(page).open()
    other = ChatPage(page.context.new_page()).open()
    chat.set_options(tokens=2, delay_ms=0)
    chat.send("from tab one")
    chat.wait_done()
    expect(other.conversations).to_have_count(1)  # told through a BroadcastChannel
    expect(other.conversations.first).to_contain_text("from tab one")
    other.page.close()
