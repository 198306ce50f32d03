"""Headless Chromium: EventSource on both URLs, two tabs sharing cookies, and
``@microsoft/fetch-event-source`` (it needs ``window``/``document``) on the POST form.

Each page is opened on the proxy's origin (the app's own origin, as the chat
page would be), so cookies and same-origin rules are the real ones.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser
from playwright.sync_api import BrowserContext
from playwright.sync_api import Page
from playwright.sync_api import Route

from tests.clients.conftest import CUT_AFTER
from tests.clients.conftest import NODE_MODULES
from tests.clients.conftest import OPTIONS
from tests.clients.conftest import expected
from tests.clients.conftest import readme_example
from tests.support.client import wait_until

#: Every in-page wait is bounded (a failing test ends).
PAGE_TIMEOUT_MS = 30_000

#: In-page helpers: POST, and read ``EventSource(url)`` to its end.
HELPERS = """
window.post = async (options) => {
  const res = await fetch('/api/streaming', {
    method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify(options ? {prompt: 'x', options} : {prompt: 'x'}),
  });
  return (await res.json()).id;
};
window.readAll = (url) => new Promise((resolve) => {
  const tokens = [];
  let opens = 0;
  const source = new EventSource(url);
  const finish = (result) => { source.close(); resolve({tokens, opens, ...result}); };
  source.onopen = () => { opens += 1; };
  source.addEventListener('newToken', (e) => tokens.push(JSON.parse(e.data).token));
  source.addEventListener('end', (e) => finish({end: JSON.parse(e.data)}));
  source.addEventListener('error', (e) => {
    if (e.data !== undefined) finish({error: JSON.parse(e.data)});
    else if (source.readyState === EventSource.CLOSED) finish({closed: true});
  });
  setTimeout(() => finish({timeout: true}), PAGE_TIMEOUT_MS);
});
""".replace("PAGE_TIMEOUT_MS", str(PAGE_TIMEOUT_MS))


@pytest.fixture
def context(browser: Browser) -> BrowserContext:
    ctx = browser.new_context()
    yield ctx
    ctx.close()


def open_page(context: BrowserContext, origin: str) -> Page:
    page = context.new_page()
    page.goto(origin + "/healthz")
    page.evaluate(HELPERS)
    return page


def test_eventsource_on_stream_url_readme_example(context, proxy):
    page = open_page(context, proxy.url)
    proxy.arm(CUT_AFTER)
    result = page.evaluate(
        "async (options) => {\n" + readme_example("EventSource") + "\n  const tokens = [];\n"
        "  const finish = await streamAnswer('x', (t) => tokens.push(t), options);\n"
        "  return {tokens, finish};\n}",
        OPTIONS,
    )
    assert result["tokens"] == expected()
    assert result["finish"]["finish_reason"] == "stop"
    assert proxy.cuts == 1


def test_eventsource_on_the_id_less_url_resumes_its_stream(context, proxy):
    page = open_page(context, proxy.url)
    page.evaluate("(options) => post(options)", OPTIONS)
    proxy.arm(CUT_AFTER)
    result = page.evaluate("() => readAll('/api/streaming')")
    assert result["tokens"] == expected() and result["end"]["finish_reason"] == "stop"
    assert proxy.cuts == 1 and result["opens"] == 2


def test_two_tabs_a_cut_and_a_reconnect_deliver_exactly_tab_as_answer(context, proxy):
    """The splice scenario: A reads, is cut; B POSTs; only then A reconnects."""
    tab_a, tab_b = open_page(context, proxy.url), open_page(context, proxy.url)
    tab_a.evaluate("(options) => post(options)", {"tokens": 40, "delay_ms": 5})
    proxy.arm(CUT_AFTER, refuse_reconnects=True)
    tab_a.evaluate("() => { window.resultA = readAll('/api/streaming'); }")
    wait_until(lambda: proxy.refused >= 1, timeout=PAGE_TIMEOUT_MS / 1000)  # A was cut
    tab_b.evaluate("() => post(null)")  # B's answer: the demo's markdown reply
    # One more refused attempt: A's next one is composed after B's POST, with its cookie.
    after_b = proxy.refused
    wait_until(lambda: proxy.refused > after_b, timeout=PAGE_TIMEOUT_MS / 1000)
    proxy.release()
    result_a = tab_a.evaluate("() => window.resultA")
    state = (proxy.cuts, proxy.refused, {k: v for k, v in result_a.items() if k != "tokens"})
    assert result_a["tokens"] == expected(40), state
    assert result_a["end"]["finish_reason"] == "stop", state
    assert proxy.cuts == 1 and result_a["opens"] == 2, state
    # B's first GET gets B's own answer (A's stream is claimed).
    result_b = tab_b.evaluate("() => readAll('/api/streaming')")
    assert "".join(result_b["tokens"]).startswith("## Hello from the demo model"), result_b


def test_two_tabs_post_post_get_get_each_get_their_own(context, proxy):
    tab_a, tab_b = open_page(context, proxy.url), open_page(context, proxy.url)
    tab_a.evaluate("() => post({tokens: 7})")
    tab_b.evaluate("() => post({tokens: 9})")
    result_a = tab_a.evaluate("() => readAll('/api/streaming')")
    result_b = tab_b.evaluate("() => readAll('/api/streaming')")
    assert result_a["tokens"] == expected(7) and result_b["tokens"] == expected(9)


def _serve_fetch_event_source(route: Route) -> None:
    name = route.request.url.rsplit("/", 1)[1]
    name = name if name.endswith(".js") else name + ".js"
    path = NODE_MODULES / "@microsoft" / "fetch-event-source" / "lib" / "esm" / name
    route.fulfill(path=str(path), content_type="text/javascript")


@pytest.mark.parametrize(
    "drop_bytes",
    # 7 bytes withheld cut inside the event's id line (its last); 1 byte (the
    # blank line) leaves its id line complete but the event unended.
    [7, 1],
    ids=["cut-inside-the-id", "cut-before-the-blank-line"],
)
def test_fetch_event_source_post_form_readme_example(context, proxy, drop_bytes):
    """A cut before an event's final newline: the library has taken its id, the
    example's ``fetch`` resumes from the last complete event instead."""
    page = open_page(context, proxy.url)
    page.route(re.compile(r".*/__clients/fetch-event-source/.*"), _serve_fetch_event_source)
    # The README's `import` line, as a dynamic import of the pinned package.
    example = readme_example("fetch-event-source").replace(
        "import { fetchEventSource } from '@microsoft/fetch-event-source';",
        "const { fetchEventSource } = await import('/__clients/fetch-event-source/index.js');",
    )
    posts = []
    page.on("request", lambda r: posts.append(r.headers) if r.method == "POST" else None)
    proxy.arm(CUT_AFTER, methods=("POST",), drop_bytes=drop_bytes)
    result = page.evaluate(
        "async (options) => {\n" + example + "\n  const tokens = [];\n"
        "  const out = await postAndStream('x', (t) => tokens.push(t), options);\n"
        "  return {tokens, ...out};\n}",
        OPTIONS,
    )
    assert result["tokens"] == expected()
    assert result["finish"]["finish_reason"] == "stop"
    assert proxy.cuts == 1
    # It retried by re-sending the POST with Last-Event-ID, and was resumed.
    assert len(posts) == 2 and "last-event-id" in posts[1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{6}\.[0-9]+", posts[1]["last-event-id"])
