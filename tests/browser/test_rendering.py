"""Long answers, wide tables and right-to-left text on the chat page.

The per-frame figures are printed (run with ``-s``), never asserted: the machine
is shared. What is asserted is structural - finished blocks are parsed once,
the text lexed per frame stays about one block long, and the incremental result
is the same DOM as rendering the whole answer at once.

    .venv/bin/python -m pytest tests/browser/test_rendering.py -s -k "frame or long_task"

``CHATSTREAM_FEED_TPS`` sets the token rate of the long-task run (default 1000);
``CHATSTREAM_MEASURE_BEFORE=1`` also runs it with the old whole-answer render.
"""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import Page
from playwright.sync_api import expect

from tests.browser.chat import TABLE
from tests.browser.chat import ChatPage

pytestmark = pytest.mark.browser


@pytest.fixture
def chat(page: Page) -> ChatPage:
    return ChatPage(page).open()


#: A long markdown answer: headings, paragraphs with inline marks and links,
#: lists, code fences and tables, cut into ~5-character tokens as models send.
MAKE_ANSWER = """(size) => {
  const blocks = [];
  let length = 0;
  for (let i = 0; length < size; i += 1) {
    let block;
    switch (i % 5) {
      case 0: block = `## Section ${i}`; break;
      case 1: block = Array.from({length: 6}, (_, k) =>
        `Sentence ${k} of part ${i} has **bold**, \\`code\\` and a ` +
        `[link](https://example.com/${i}/${k}).`).join(' ');
        break;
      case 2: block = Array.from({length: 5}, (_, k) =>
        `- item ${k} of list ${i} with *emphasis*`).join('\\n'); break;
      case 3: block = '```python\\n' + Array.from({length: 10}, (_, k) =>
        `def f_${i}_${k}(x):\\n    return x * ${k}  # line ${k}`).join('\\n') + '\\n```'; break;
      default: block = '| name | value | note | more |\\n| --- | --- | --- | --- |\\n' +
        Array.from({length: 5}, (_, k) => `| n${k} | ${i * k} | row ${k} | **x** |`).join('\\n');
    }
    blocks.push(block);
    length += block.length + 2;
  }
  const text = blocks.join('\\n\\n') + '\\n';
  return { text, tokens: text.match(/\\s*\\S{1,5}|\\s+/g) };
}"""

SETUP = """async () => {
  const live = await import('/static/js/live-markdown.js');
  const md = await import('/static/js/markdown.js');
  const li = document.createElement('li');
  li.className = 'msg msg-assistant';
  li.innerHTML = '<article class="msg-box"><div class="msg-body">' +
    '<div class="md"></div></div></article>';
  document.getElementById('messages').append(li);
  document.getElementById('empty-state').hidden = true;
  window.__bench = { live, md, el: li.querySelector('.md') };
}"""

PER_FRAME = """async ({ make, sizes }) => {
  const { live, md, el } = window.__bench;
  const { text } = (new Function('return ' + make))()(Math.max(...sizes) + 2000);
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const renderer = new live.LiveMarkdown(el);
  const result = { sizes: {}, chars: text.length };
  let fed = 0;
  for (const size of sizes) {
    for (; fed + 200 <= size; fed += 200) { renderer.set(text.slice(0, fed)); renderer.flush(); }
    const times = [];
    for (let k = 0; k < 15; k += 1) {   // 15 frames, ~40 characters (8 tokens) each
      fed += 40;
      renderer.set(text.slice(0, fed));
      const t0 = performance.now();
      renderer.flush();
      el.getBoundingClientRect();        // include style and layout of the change
      times.push(performance.now() - t0);
    }
    // The old way, for comparison: re-render the whole answer each frame.
    const probe = document.createElement('div');
    probe.className = 'md';
    el.after(probe);
    const full = [];
    for (let k = 0; k < 5; k += 1) {
      const t0 = performance.now();
      probe.replaceChildren(md.renderMarkdown(text.slice(0, fed)));
      probe.getBoundingClientRect();
      full.push(performance.now() - t0);
    }
    probe.remove();
    result.sizes[size] = { incremental: median(times), whole: median(full) };
  }
  for (; fed < text.length; fed += 200) { renderer.set(text.slice(0, fed)); renderer.flush(); }
  renderer.finish(text);
  const whole = document.createElement('div');
  whole.append(md.renderMarkdown(text));
  const blocks = md.lexBlocks(text).filter((t) => t.type !== 'space').length;
  return { ...result, stats: renderer.stats, blocks, same: whole.innerHTML === el.innerHTML };
}"""


def test_long_answer_frames_cost_one_block_not_the_whole_answer(chat: ChatPage) -> None:
    chat.page.evaluate(SETUP)
    sizes = [5_000, 20_000, 100_000]
    out = chat.page.evaluate(PER_FRAME, {"make": MAKE_ANSWER, "sizes": sizes})
    print("\nms per render frame (median; incremental vs. whole answer re-rendered):")
    for size in sizes:
        row = out["sizes"][str(size)]
        print(f"  {size:>7,} chars: {row['incremental']:7.2f} ms   vs {row['whole']:7.2f} ms")
    stats = out["stats"]
    print(
        f"  {stats['frames']} frames, {stats['finishedBlocks']} finished blocks, "
        f"longest text lexed in one frame {stats['maxLexedChars']} of {out['chars']} chars"
    )
    # Every block was parsed, sanitized and highlighted once as a finished block ...
    assert stats["finishedBlocks"] == out["blocks"]
    # ... and no frame re-lexed finished text: at most the growing block plus one chunk.
    assert stats["maxLexedChars"] < 2_000 < out["chars"] // 50
    # The incremental DOM is exactly what rendering the whole answer gives.
    assert out["same"] is True


LONG_TASKS = """async ({ make, count, tps, whole }) => {
  const { live, md, el } = window.__bench;
  const { tokens } = (new Function('return ' + make))()(count * 6);
  const list = tokens.slice(0, count);
  const longTasks = [];
  const observer = new PerformanceObserver((entries) => {
    for (const entry of entries.getEntries()) longTasks.push(entry.duration);
  });
  observer.observe({ type: 'longtask' });
  const renderer = new live.LiveMarkdown(el);
  let pending = 0;
  const show = (text) => {          // the old page: whole answer, once per frame
    if (pending) return;
    pending = requestAnimationFrame(() => {
      pending = 0;
      el.replaceChildren(md.renderMarkdown(text));
    });
  };
  let text = '';
  let sent = 0;
  const t0 = performance.now();
  await new Promise((done) => {
    const tick = () => {            // tokens arrive as the clock allows, like a stream
      const due = Math.min(list.length, Math.floor(((performance.now() - t0) / 1000) * tps));
      for (; sent < due; sent += 1) {
        text += list[sent];
        if (whole) show(text); else renderer.set(text);
      }
      if (sent < list.length) setTimeout(tick, 5); else done();
    };
    tick();
  });
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 100)));
  const elapsed = performance.now() - t0;
  observer.disconnect();
  const total = longTasks.reduce((a, b) => a + b, 0);
  return { elapsed, chars: text.length, longTasks: longTasks.length, longTaskMs: total,
           longest: Math.max(0, ...longTasks) };
}"""

KEY_LATENCY = """() => {
  window.__keys = [];
  document.getElementById('prompt').addEventListener('keydown', (e) => {
    const t = e.timeStamp;
    requestAnimationFrame(() => window.__keys.push(performance.now() - t));
  });
}"""


def test_long_answer_long_task_share_and_typing(chat: ChatPage) -> None:
    chat.page.evaluate(SETUP)
    chat.page.evaluate(KEY_LATENCY)
    tps = int(os.environ.get("CHATSTREAM_FEED_TPS", "1000"))
    modes = [False, True] if os.environ.get("CHATSTREAM_MEASURE_BEFORE") == "1" else [False]
    for whole in modes:
        chat.page.evaluate("() => { window.__keys = []; window.__bench.el.replaceChildren(); }")
        args = {"make": MAKE_ANSWER, "count": 20_000, "tps": tps, "whole": whole}
        chat.page.evaluate(
            "args => { window.__run = null; window.__runP = (" + LONG_TASKS + ")(args)"
            ".then((r) => { window.__run = r; }); }",
            args,
        )
        chat.prompt.click()
        for _ in range(40):  # typing while the answer streams
            if chat.page.evaluate("window.__run") is not None:
                break
            chat.page.keyboard.type("typing along ", delay=30)
        chat.page.wait_for_function("() => window.__run !== null", timeout=300_000)
        run = chat.page.evaluate("window.__run")
        keys = sorted(chat.page.evaluate("window.__keys"))
        label = "whole answer per frame (before)" if whole else "incremental (after)"
        share = run["longTaskMs"] / run["elapsed"]
        print(
            f"\n20,000 tokens at {tps} tok/s, {label}: {run['chars']:,} chars in "
            f"{run['elapsed'] / 1000:.1f} s; long tasks {run['longTasks']} = {share:.0%} "
            "of the time, "
            f"longest {run['longest']:.0f} ms; key press to next frame: median "
            f"{keys[len(keys) // 2] if keys else 0:.0f} ms, max {keys[-1] if keys else 0:.0f} ms "
            f"({len(keys)} keys)"
        )
        assert run["chars"] > 50_000


def test_eight_column_table_scrolls_sideways_at_390px_with_whole_words(
    page: Page, artifacts_dir
) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    chat = ChatPage(page).open()
    chat.set_options()
    chat.send(TABLE)
    answer = chat.wait_done()
    wrap = answer.locator(".table-wrap")
    expect(wrap).to_have_count(1)
    expect(wrap).to_have_attribute("tabindex", "0")
    widths = wrap.evaluate("w => [w.scrollWidth, w.clientWidth]")
    assert widths[0] > widths[1]  # wider than the phone: it scrolls ...
    # ... and every word sits on one line (no letter-by-letter stacking; a
    # hyphen is a fair place to break).
    broken = wrap.evaluate("""w => [...w.querySelectorAll('th, td')].filter((cell) => {
      return cell.textContent.trim().split(/[\\s-]+/).some((word) => {
        const node = [...cell.childNodes].find((n) => n.nodeType === 3 && n.data.includes(word));
        if (!node) return false;
        const range = document.createRange();
        const at = node.data.indexOf(word);
        range.setStart(node, at);
        range.setEnd(node, at + word.length);
        return range.getClientRects().length > 1;
      });
    }).map((cell) => cell.textContent)""")
    assert broken == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    answer.scroll_into_view_if_needed()
    page.screenshot(path=artifacts_dir / "table-390.png")
    # Keyboard: the wrapper takes focus and the arrow keys scroll it.
    wrap.focus()
    expect(wrap).to_be_focused()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "() => document.querySelector('.table-wrap').scrollLeft > 0", timeout=5000
    )


def test_right_to_left_prompt_answer_title_and_composer(chat: ChatPage) -> None:
    hebrew = "שלום! מה שלומך היום?"
    chat.set_options()
    chat.send(hebrew)
    answer = chat.wait_done()
    bubble = chat.user_messages.last.locator(".bubble")
    assert bubble.evaluate("b => b.matches(':dir(rtl)')") is True
    quote = answer.locator("blockquote")
    assert quote.evaluate("q => q.matches(':dir(rtl)')") is True
    # The quote's rule follows the text: it is on the right, where the line starts.
    borders = quote.evaluate(
        "q => [getComputedStyle(q).borderRightWidth, getComputedStyle(q).borderLeftWidth]"
    )
    assert borders == ["3px", "0px"]
    # The English parts of the same answer stay left-to-right.
    assert answer.locator(".md h2").evaluate("h => h.matches(':dir(ltr)')") is True
    title = chat.page.locator("#conv-list .conv-open").first
    assert title.evaluate("t => t.matches(':dir(rtl)')") is True
    assert chat.page.locator("#chat-title").evaluate("t => t.matches(':dir(rtl)')") is True
    chat.prompt.fill("مرحبا")
    assert chat.prompt.evaluate("t => t.matches(':dir(rtl)')") is True
    expect(bubble).to_have_text(hebrew)


def test_open_code_fence_and_open_list_are_the_growing_block(chat: ChatPage) -> None:
    """A fence or list still open is re-rendered (plain); once closed it is final (highlighted)."""
    chat.page.evaluate(SETUP)
    steps = chat.page.evaluate("""() => {
      const { live, el } = window.__bench;
      const renderer = new live.LiveMarkdown(el);
      const seen = [];
      const look = (label) => seen.push({
        label,
        finished: renderer.stats.finishedBlocks,
        copy: el.querySelectorAll('.copy-code').length,
        keywords: el.querySelectorAll('.hljs-keyword').length,
        items: el.querySelectorAll('li').length,
      });
      let text = 'Intro.\\n\\n```python\\nimport os\\n';
      renderer.set(text); renderer.flush(); look('open fence');
      text += 'import sys\\n';
      renderer.set(text); renderer.flush(); look('fence grows');
      text += '```\\n\\n- one\\n';
      renderer.set(text); renderer.flush(); look('fence closed, list open');
      text += '- two\\n';
      renderer.set(text); renderer.flush(); look('list grows');
      text += '\\nThe end.';
      renderer.set(text); renderer.flush(); look('list closed');
      renderer.finish(text); look('answer complete');
      return seen;
    }""")
    by_label = {step["label"]: step for step in steps}
    assert by_label["open fence"] == {
        "label": "open fence",
        "finished": 1,
        "copy": 0,
        "keywords": 0,
        "items": 0,
    }
    assert by_label["fence grows"]["finished"] == 1  # still growing: not parsed as final
    assert by_label["fence grows"]["keywords"] == 0  # and not highlighted yet
    closed = by_label["fence closed, list open"]
    assert (closed["finished"], closed["copy"], closed["keywords"]) == (2, 1, 2)
    assert by_label["list grows"]["finished"] == 2 and by_label["list grows"]["items"] == 2
    assert by_label["list closed"]["finished"] == 3
    assert by_label["answer complete"]["finished"] == 4
