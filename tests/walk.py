"""The evaluation walk of issue 17, in Chromium, as a new user would take it.

Edit the reviewer's prompt (v1 → v2); make a dataset of five cases, three from its form and
two from finished jobs; run it on v1 and on v2 with the LLM judge and the "Not empty"
scorer; compare the two runs; see the version in a case job's trace and the quality term
in a new job's "why picked". Only what a user sees is used (roles, labels, links), and no
address but the start page.

    python -m tests.walk --base-url http://127.0.0.1:8000 --username admin --password … \
        --shots /tmp/shots

runs it against a running server (`make dev`) and prints what it saw. The caller logs in
when `walk()` is called directly (tests/test_browser_evaluation_walk.py).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from playwright.sync_api import Page, expect

REVIEWER = "Reviewer"
PROMPT_V2 = (
    "You are a careful code reviewer. List each defect with its line, say how to fix it, "
    "and end with one sentence on whether the code is ready."
)
VERSION_NOTE = "Ask for a fix per defect and a verdict"
FORM_CASES = (
    ("Review a slug helper", "Review a Python function that turns a title into a URL slug."),
    ("Review a retry loop", "Review a retry loop with exponential backoff for HTTP calls."),
    ("Review a CSV parser", "Review a small CSV parser that must handle quoted commas."),
)
JOB_TITLES = ("Walk job: a URL shortener", "Walk job: a todo API")
LAST_JOB = "Walk job: a word counter"
SCORERS = ("LLM judge (helpfulness)", "Not empty")
JOB_TIMEOUT_S = 120
EXPERIMENT_TIMEOUT_S = 300


class Walk:
    """The page, where screenshots go and what has been seen so far."""

    def __init__(self, page: Page, base_url: str, shots: Path | None) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.shots = shots
        self.shot_number = 0
        # Named by the time: a second walk on the same server makes a dataset of its own.
        self.dataset = f"Reviewer walk {time.strftime('%H:%M:%S')}"
        self.seen: dict = {"dataset": self.dataset, "screenshots": []}
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)

    def shot(self, name: str) -> None:
        if self.shots is None:
            return
        self.shot_number += 1
        path = self.shots / f"{self.shot_number:02d}-{name}.png"
        self.page.screenshot(path=path, full_page=True)
        self.seen["screenshots"].append(str(path))

    def nav(self, name: str) -> None:
        self.page.get_by_role("navigation", name="Main").get_by_role(
            "link", name=name, exact=True
        ).click()
        expect(self.page.get_by_role("heading", level=1)).to_be_visible()

    def wait_for(self, locator_of, attribute: str, value: str, timeout_s: float) -> None:
        """Reload the page until locator_of(page) has `attribute` = `value`, at most
        timeout_s: a user waiting on a page and pressing reload now and then."""
        deadline = time.monotonic() + timeout_s
        while True:
            current = locator_of(self.page).get_attribute(attribute)
            if current == value:
                return
            if current in ("failed", "cancelled") or time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.page.url}: {attribute} is {current!r}, not {value!r}"
                    f" after {timeout_s} s"
                )
            time.sleep(0.5)
            self.page.reload()

    # Steps, in the order of the acceptance walk.

    def edit_reviewer(self) -> None:
        page = self.page
        page.goto(f"{self.base_url}/")
        self.nav("Agents")
        row = page.locator("tr", has=page.get_by_role("rowheader", name=re.compile(REVIEWER)))
        before = int(re.search(r"v(\d+)", row.locator(".version").inner_text()).group(1))
        page.get_by_role("link", name=f"Edit {REVIEWER}", exact=True).click()
        expect(page.get_by_role("heading", name=f"Edit {REVIEWER}")).to_be_visible()
        page.get_by_label("System prompt").fill(PROMPT_V2)
        page.get_by_label("Note for the new version").fill(VERSION_NOTE)
        self.shot("agent-edit")
        page.get_by_role("button", name="Save agent").click()
        expect(page.get_by_role("heading", name="Agents", exact=True)).to_be_visible()
        after = before + 1
        page.get_by_role("link", name=f"v{after} of {REVIEWER}: its versions").click()
        expect(
            page.get_by_role("heading", name=re.compile(f"{REVIEWER} .*versions"))
        ).to_be_visible()
        versions = page.get_by_role("region", name=re.compile("^Versions"))
        expect(versions.get_by_role("heading", name=f"v{before}", exact=True)).to_be_visible()
        expect(versions.get_by_role("heading", name=f"v{after} current")).to_be_visible()
        expect(versions).to_contain_text(VERSION_NOTE)
        expect(versions).to_contain_text("System prompt")
        self.seen["reviewer_versions"] = {"before": before, "after": after}
        self.shot("agent-versions")

    def submit_job(self, title: str, description: str) -> int:
        page = self.page
        self.nav("Board")
        new_job = page.locator("#new-job")  # "New job" is closed until asked for
        if new_job.get_attribute("open") is None:
            new_job.locator("summary").click()
        page.get_by_label("Title").fill(title)
        page.get_by_label("Description").fill(description)
        page.get_by_role("button", name="Submit job").click()
        notice = page.get_by_role("status").filter(has_text=f"{title} submitted")
        expect(notice).to_be_visible()
        href = notice.get_by_role("link").get_attribute("href")
        return int(re.search(r"/jobs/(\d+)/", href).group(1))

    def open_job_from_board(self, job_id: int, title: str) -> None:
        self.nav("Board")
        self.page.get_by_role("link", name=f"#{job_id} {title}", exact=True).first.click()
        expect(self.page.locator("#job-header")).to_be_visible()

    def wait_job_completed(self) -> None:
        self.wait_for(lambda p: p.locator("#job-header"), "data-status", "completed", JOB_TIMEOUT_S)

    def submit_two_jobs(self) -> list[int]:
        ids = [
            self.submit_job(
                title, f"{title.split(': ', 1)[1].capitalize()}: build it and review it."
            )
            for title in JOB_TITLES
        ]
        self.shot("board-submitted")
        for job_id, title in zip(ids, JOB_TITLES, strict=True):
            self.open_job_from_board(job_id, title)
            self.wait_job_completed()
        self.seen["source_jobs"] = ids
        return ids

    def make_dataset(self, job_ids: list[int]) -> None:
        page = self.page
        self.nav("Datasets")
        page.get_by_label("Name").fill(self.dataset)
        page.get_by_label("Description").fill("Three hand-written reviews and two real jobs.")
        page.get_by_role("button", name="Create dataset").click()
        expect(page.get_by_role("heading", name=re.compile(self.dataset), level=1)).to_be_visible()
        for title, description in FORM_CASES:
            page.get_by_label("Title").fill(title)
            page.get_by_label("Input (as a job's description)").fill(description)
            page.get_by_label("Expected output").fill("A list of defects and a verdict.")
            page.get_by_label("Tags").fill("walk, form")
            page.get_by_role("button", name="Add case").click()
            expect(page.get_by_role("alert").filter(has_text=f"{title} added.")).to_be_visible()
        self.shot("dataset-form-cases")
        for job_id, title in zip(job_ids, JOB_TITLES, strict=True):
            self.open_job_from_board(job_id, title)
            page.get_by_text("Add to dataset", exact=True).click()
            page.get_by_label("Dataset", exact=True).select_option(label=self.dataset)
            if job_id == job_ids[-1]:
                self.shot("job-add-to-dataset")
            page.get_by_role("button", name="Add job").click()
            expect(page.get_by_text(f"Job #{job_id} added to {self.dataset}.")).to_be_visible()
            if job_id == job_ids[-1]:
                self.shot("job-added-to-dataset")
        self.nav("Datasets")
        page.get_by_role("link", name=self.dataset, exact=True).click()
        cases = page.get_by_role("region", name=re.compile("Cases"))
        expect(cases.locator(".count")).to_have_text("5")
        for job_id in job_ids:
            expect(cases.get_by_role("link", name=f"job #{job_id}")).to_be_visible()
        self.seen["dataset_cases"] = 5
        self.shot("dataset-five-cases")

    def run_experiment(self, name: str, reviewer_version: int | None) -> dict:
        """Start an experiment from the form; wait on its page until it completes."""
        page = self.page
        self.nav("Experiments")
        form = page.get_by_role("region", name="New experiment")
        form.get_by_label("Name").fill(name)
        form.get_by_label("Dataset", exact=True).select_option(label=self.dataset)
        form.get_by_label("Scorers").select_option(label=list(SCORERS))
        pin = form.get_by_label(f"{REVIEWER}: version")
        if reviewer_version is None:
            pin.select_option(index=0)  # "current (vN)"
        else:
            pin.select_option(label=f"{REVIEWER} v{reviewer_version}")
        form.get_by_label("Concurrency").fill("5")
        self.shot(
            f"experiment-new-{'v' + str(reviewer_version) if reviewer_version else 'current'}"
        )
        form.get_by_role("button", name="Start experiment").click()
        heading = page.get_by_role("heading", name=re.compile(rf"#\d+ {re.escape(name)}$"))
        expect(heading).to_be_visible()
        experiment_id = int(re.match(r"#(\d+)", heading.inner_text()).group(1))
        self.wait_for(
            lambda p: p.locator("#experiment-live"),
            "data-status",
            "completed",
            EXPERIMENT_TIMEOUT_S,
        )
        # Every case scored by both scorers.
        progress = page.locator("#experiment-progress").inner_text()
        match = re.search(r"(\d+)/(\d+) done .* (\d+) failed · (\d+) scored", progress)
        assert match, progress
        done, total, failed, scored = (int(g) for g in match.groups())
        assert (done, total, failed) == (5, 5, 0), progress
        means = {}
        scores = page.get_by_role("region", name="Scores")
        for scorer in SCORERS:
            row = scores.get_by_role("row").filter(
                has=page.get_by_role("rowheader", name=scorer, exact=True)
            )
            cells = row.get_by_role("cell")
            n = int(cells.nth(0).inner_text())
            assert n == 5, f"{scorer} scored {n} of 5 cases"
            means[scorer] = {
                "n": n,
                "mean": float(cells.nth(1).inner_text()),
                "interval": cells.nth(2).inner_text(),
                "pass_rate": cells.nth(3).inner_text(),
            }
        versions = page.locator(".job-header .meta").nth(1).inner_text()
        self.shot(f"experiment-{experiment_id}-completed")
        return {
            "id": experiment_id,
            "name": name,
            "progress": progress,
            "versions": versions,
            "scores": means,
        }

    def compare(self, a: dict, b: dict) -> None:
        page = self.page
        self.nav("Experiments")
        pair = page.get_by_role("region", name="Compare two experiments")
        pair.get_by_label("Experiment A").select_option(label=f"#{a['id']} {a['name']}")
        pair.get_by_label("Experiment B").select_option(label=f"#{b['id']} {b['name']}")
        pair.get_by_role("button", name="Compare").click()
        expect(
            page.get_by_role("heading", name=re.compile(rf"A: #{a['id']} .*B: #{b['id']}"))
        ).to_be_visible()
        versions = page.get_by_role("region", name="Agent versions that differ")
        after = self.seen["reviewer_versions"]["after"]
        before = self.seen["reviewer_versions"]["before"]
        expect(versions).to_contain_text(f"A: {REVIEWER} v{before} → B: {REVIEWER} v{after}")
        by_scorer = page.get_by_role("region", name="By scorer")
        expect(by_scorer.get_by_role("columnheader", name="B wins / losses / ties")).to_be_visible()
        rows = {}
        for scorer in SCORERS:
            row = by_scorer.get_by_role("row").filter(
                has=page.get_by_role("rowheader", name=scorer, exact=True)
            )
            wlt = row.locator(".wlt").inner_text()
            wins, losses, ties = (int(x) for x in wlt.split(" / "))
            assert wins + losses + ties == 5, f"{scorer}: {wlt} is not five pairs"
            cells = row.get_by_role("cell")
            rows[scorer] = {
                "mean_a": cells.nth(0).inner_text(),
                "mean_b": cells.nth(1).inner_text(),
                "diff": cells.nth(2).inner_text(),
                "wins_losses_ties": wlt,
                "verdict": cells.nth(4).inner_text(),
            }
        self.seen["compare"] = {
            "versions": versions.get_by_role("listitem").all_inner_texts(),
            "scorers": rows,
        }
        self.shot("compare")

    def trace_names_version(self, experiment: dict) -> None:
        page = self.page
        self.nav("Experiments")
        page.get_by_role(
            "link", name=f"#{experiment['id']} {experiment['name']}", exact=True
        ).click()
        cases = page.get_by_role("region", name=re.compile("^Cases"))
        job_link = cases.get_by_role("link", name=re.compile(r"^#\d+$")).first
        job_id = int(job_link.inner_text().lstrip("#"))
        job_link.click()
        expect(page.locator("#job-header")).to_be_visible()
        before = self.seen["reviewer_versions"]["before"]
        review = self._reviewer_step()
        trace = review.get_by_role("list", name=re.compile("LLM calls of"))
        expect(trace).to_contain_text(f"{REVIEWER} v{before}")
        self.seen["trace"] = {
            "job": job_id,
            "step": review.locator("summary").inner_text(),
            "calls": trace.get_by_role("listitem").all_inner_texts()[:3],
        }
        review.scroll_into_view_if_needed()
        self.shot("case-job-trace")

    def _reviewer_step(self):
        """The job page's subtask the reviewer did, opened."""
        page = self.page
        step = (
            page.locator("details.subtask")
            .filter(has=page.locator("summary", has_text=re.compile(rf"→ {REVIEWER} v\d+")))
            .first
        )
        expect(step).to_be_visible()
        if step.get_attribute("open") is None:
            step.locator("summary").click()
        return step

    def quality_in_why_picked(self) -> None:
        page = self.page
        job_id = self.submit_job(LAST_JOB, "Count the words of a text file; review the code.")
        self.open_job_from_board(job_id, LAST_JOB)
        self.wait_job_completed()
        review = self._reviewer_step()
        table = review.get_by_role("table").filter(
            has=page.get_by_role("columnheader", name="Quality")
        )
        expect(table).to_be_visible()
        row = table.get_by_role("row").filter(has_text=re.compile(REVIEWER, re.I)).first
        quality = row.get_by_role("cell").nth(4).inner_text()
        assert "prior" not in quality and re.match(r"\d\.\d\d \(n=\d+, [+-]", quality), (
            f"job #{job_id}: the reviewer's quality reads {quality!r}"
        )
        self.seen["why_picked"] = {
            "job": job_id,
            "caption": table.locator("caption").inner_text(),
            "reviewer_quality": quality,
        }
        table.scroll_into_view_if_needed()
        self.shot("why-picked-quality")


def log_in(page: Page, base_url: str, username: str, password: str) -> None:
    """The login form, as tests.browser.log_in (which reads the tests' password)."""
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name=f"Log out {username}")).to_be_visible()


def walk(page: Page, base_url: str, shots: Path | None) -> dict:
    """The whole acceptance walk through the pages; what it saw. The page is logged in."""
    run = Walk(page, base_url, shots)
    timings = run.seen["seconds"] = {}
    started = time.monotonic()

    def step(name: str, do, *args):
        begun = time.monotonic()
        result = do(*args)
        timings[name] = round(time.monotonic() - begun, 1)
        return result

    step("edit reviewer", run.edit_reviewer)
    job_ids = step("two jobs", run.submit_two_jobs)
    step("dataset", run.make_dataset, job_ids)
    before = run.seen["reviewer_versions"]["before"]
    first = step("experiment v1", run.run_experiment, f"Reviewer v{before}", before)
    second = step("experiment current", run.run_experiment, "Reviewer current", None)
    run.seen["experiments"] = [first, second]
    step("compare", run.compare, first, second)
    step("trace", run.trace_names_version, first)
    step("why picked", run.quality_in_why_picked)
    timings["all"] = round(time.monotonic() - started, 1)
    return run.seen


def main(argv: list[str] | None = None) -> int:
    from .browser import chromium

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--shots", type=Path, default=None, help="where the screenshots go")
    args = parser.parse_args(argv)
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(20_000)
        log_in(page, args.base_url.rstrip("/"), args.username, args.password)
        seen = walk(page, args.base_url, args.shots)
        context.close()
    print(json.dumps(seen, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
