"""A small page object for the chat page, and the helpers the browser tests share."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse
from playwright.sync_api import Locator
from playwright.sync_api import Page
from playwright.sync_api import Request
from playwright.sync_api import Response
from playwright.sync_api import Route
from playwright.sync_api import expect

#: Playwright waits (ms): generous, since they only bound a failing test.
WAIT_MS = 20_000

# How many numbers the last answer shows (demo `tokens` answers are "0 1 2 ...").
_COUNT_JS = """() => {
  const md = document.querySelector('#messages li.msg-assistant:last-child .md');
  return md ? (md.textContent.match(/\\d+/g) || []).length : 0;
}"""


def numbers(count: int, start: int = 0) -> str:
    """The rendered text of a demo answer made with ``options.tokens = count``."""
    return " ".join(str(i) for i in range(start, count))


def is_stream_post(request: Request) -> bool:
    return request.method == "POST" and request.url.endswith("/api/streaming")


def is_stream_post_response(response: Response) -> bool:
    return is_stream_post(response.request)


class ChatPage:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.prompt = page.locator("#prompt")
        self.send_button = page.locator("#send")
        self.stop_button = page.locator("#stop")
        self.messages = page.locator("#messages > li.msg")
        self.user_messages = page.locator("#messages > li.msg-user")
        self.answers = page.locator("#messages > li.msg-assistant")
        self.conversations = page.locator("#conv-list > li.conv")
        self.announcer = page.locator("#announcer")
        self.stats = page.locator("#stats")

    def open(self) -> ChatPage:
        self.page.goto("/")
        expect(self.page.locator("body.is-ready")).to_be_attached()
        return self

    def set_options(self, **options: Any) -> None:
        """Make the next POSTs carry demo ``options`` (``tokens``, ``delay_ms``...)."""
        self.page.evaluate(
            "o => { window.chatstreamRequestExtra = Object.keys(o).length ? {options: o} : null }",
            options,
        )

    def send(self, text: str) -> dict[str, Any]:
        """Type ``text``, press Enter, and return the JSON body that was POSTed."""
        self.prompt.fill(text)
        with self.page.expect_request(is_stream_post) as req:
            self.prompt.press("Enter")
        body: dict[str, Any] = req.value.post_data_json
        return body

    @property
    def last_answer(self) -> Locator:
        return self.answers.last

    def last_text(self) -> str:
        return self.last_answer.locator(".md").inner_text().strip()

    def wait_done(self, status: str = "done") -> Locator:
        answer = self.last_answer
        expect(answer).to_have_attribute("data-status", status, timeout=WAIT_MS)
        return answer

    def shown_numbers(self) -> int:
        count: int = self.page.evaluate(_COUNT_JS)
        return count

    def wait_numbers_above(self, count: int) -> int:
        """Wait until the last answer shows more than ``count`` numbers.

        :returns: the new count.
        """
        self.page.wait_for_function(f"n => ({_COUNT_JS})() > n", arg=count, timeout=WAIT_MS)
        return self.shown_numbers()

    def saved_state(self) -> dict[str, Any]:
        """What the page stored in IndexedDB: ``activeId`` and ``conversations`` (newest first)."""
        state: dict[str, Any] = self.page.evaluate(SAVED_STATE_JS)
        return state


#: Read the page's IndexedDB records directly (not through the page's code).
SAVED_STATE_JS = """async () => {
  const db = await new Promise((ok, fail) => {
    const req = indexedDB.open('chatstream');
    req.onsuccess = () => ok(req.result);
    req.onerror = () => fail(req.error);
  });
  let conversations = [];
  if (db.objectStoreNames.contains('conversations')) {
    conversations = await new Promise((ok, fail) => {
      const req = db.transaction('conversations').objectStore('conversations').getAll();
      req.onsuccess = () => ok(req.result);
      req.onerror = () => fail(req.error);
    });
  }
  db.close();
  conversations.sort((a, b) => b.updatedAt - a.updatedAt);
  return { activeId: localStorage.getItem('chatstream.active'), conversations };
}"""


STREAM_GET = re.compile(r".*/api/streaming/[^/]+$")


def fulfill_with_first_events(
    route: Route, base_url: str, count: int, served: list[str], tail: str = ""
) -> None:
    """Answer a stream GET with the server's own first ``count`` events, then ``tail``.

    The response then ends, as a dropped (or restarting) connection would;
    ``served`` collects the ids that went out.
    """
    frames = ["retry: 200\n\n"]
    with (
        httpx.Client(base_url=base_url, timeout=20) as client,
        connect_sse(client, "GET", route.request.url) as source,
    ):
        for event in source.iter_sse():
            if not event.data:  # the leading `retry:` field, not an event
                continue
            frames.append(f"id: {event.id}\nevent: {event.event}\ndata: {event.data}\n\n")
            served.append(event.id)
            if len(served) == count:
                break
    route.fulfill(
        status=200,
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"},
        body="".join(frames) + tail,
    )


def conversations(count: int, prefix: str = "old") -> list[dict[str, Any]]:
    """``count`` saved conversations in the page's record format, oldest first."""
    return [
        {
            "id": f"{prefix}-{i}",
            "title": f"{prefix} chat {i}",
            "model": "demo",
            "createdAt": 1_700_000_000_000 + i,
            "updatedAt": 1_700_000_000_000 + i,
            "messages": [
                {"role": "user", "content": f"{prefix} question {i}"},
                {"role": "assistant", "content": f"answer {i} " + "x" * 2000, "status": "done"},
            ],
        }
        for i in range(count)
    ]


def import_conversations(page: Page, convs: list[dict[str, Any]]) -> None:
    """Import through the sidebar's file input, as a user would with an export file."""
    page.locator("#import-file").set_input_files(
        files=[
            {
                "name": "chats.json",
                "mimeType": "application/json",
                "buffer": json.dumps({"conversations": convs}).encode(),
            }
        ]
    )


#: An 8-column table in the prompt; the demo model quotes the prompt back.
TABLE = "\n".join(
    [
        "| Language | Paradigm | Typing | Released | Creator | Runtime | Package manager | Notes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        "| Python | multi-paradigm | dynamic | 1991 | Guido van Rossum | CPython | pip | many |",
        "| JavaScript | multi-paradigm | dynamic | 1995 | Brendan Eich | V8 | npm | everywhere |",
    ]
)


def run_axe(page: Page, axe_script: Path) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(axe_script))
    result: list[dict[str, Any]] = page.evaluate(
        """async () => {
          const r = await axe.run(document, { resultTypes: ['violations'] });
          return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length,
            targets: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
        }"""
    )
    return result


def watch_announcements(page: Page) -> None:
    """Record every change of the live region in ``window.__announcements``."""
    page.evaluate("""() => {
      window.__announcements = [];
      new MutationObserver(() => {
        const t = document.getElementById('announcer').textContent;
        if (t) window.__announcements.push(t);
      }).observe(document.getElementById('announcer'),
                 {childList: true, characterData: true, subtree: true});
    }""")
