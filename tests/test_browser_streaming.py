"""A running subtask's text reaches an open job page while its call is still answering.

The stack's simulator takes 4 s a call and streams its answer in pieces over that time. The
page records every text it shows for a subtask; one that is a strict beginning of the answer
stored at the end can only have been sent before the call ended (the last message is the
whole answer).
"""

import pytest
from playwright.sync_api import expect

from agents.models import LLMCall, Subtask, SubtaskStatus

from .browser import assert_steady, open_job, screenshot, submit_in_form, user_page
from .stack import wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("pages_closed"),
]

LATENCY_MS = 4000
LIVE_TIMEOUT_MS = 90_000
# Markup in the request comes back in the answer: it must be shown as text.
DESCRIPTION = "Explain <b>bold</b> claims <img src=x onerror=window.__pwned=1> about queues."

# Records each text shown in a live-text box, in order: [subtask id, text].
RECORD_TEXT = """() => {
  window.__texts = [];
  const record = () => {
    for (const box of document.querySelectorAll('.live-text:not([hidden])')) {
      const id = box.id.replace('live-text-', '');
      const last = window.__texts.filter(t => t[0] === id).pop();
      if (!last || last[1] !== box.textContent) window.__texts.push([id, box.textContent]);
    }
  };
  new MutationObserver(record).observe(document.body,
    {subtree: true, childList: true, characterData: true});
  record();
}"""


def test_streamed_text_reaches_an_open_job_page_before_the_call_ends(
    slow_stack, seeded, browser, request
):
    url = slow_stack.base_url
    alice = user_page(browser, url, "alice")
    job_id = submit_in_form(alice, "Streamed job", DESCRIPTION)
    open_job(alice, url, job_id)
    alice.evaluate(RECORD_TEXT)

    # The first subtask's text appears while it runs, in its folded summary.
    wait_until(lambda: Subtask.objects.filter(job_id=job_id, key="research").exists(), "the plan")
    research = Subtask.objects.get(job_id=job_id, key="research")
    box = alice.locator(f"#live-text-{research.pk}")
    expect(box).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(box).to_contain_text("[simulator]")
    screenshot(alice, request, "streaming-live-text")

    # Then the stored result replaces it.
    details = alice.locator(f"#subtask-{research.pk}")
    expect(details).to_have_attribute("data-status", "completed", timeout=LIVE_TIMEOUT_MS)
    expect(box).to_have_count(0)
    # Its answer (after a tool call, where the seeded researcher's grants lead to one).
    call = LLMCall.objects.filter(subtask=research, error="").exclude(response="").latest("pk")
    research.refresh_from_db()
    assert research.status == SubtaskStatus.COMPLETED
    assert research.result == call.response

    texts = [text for sub, text in alice.evaluate("window.__texts") if sub == str(research.pk)]
    print("texts seen:", [len(text) for text in texts], "of", len(call.response))
    partial = [t for t in texts if len(t) < len(call.response) and call.response.startswith(t)]
    assert partial, f"no partial text was shown before the call ended: {texts}"
    assert all(call.response.startswith(text) for text in texts), texts
    assert len(texts) < 10, f"more updates than a few a second: {len(texts)}"

    # The request's markup came back as text: shown literally, never run or parsed.
    assert any("<img src=x" in text for text in texts), texts
    assert alice.evaluate("window.__pwned") is None
    assert alice.locator(".live-text img, .live-text b").count() == 0
    assert_steady(alice)
