"""Datasets' cases: imported from JSONL or CSV (bounded, every bad line reported, nothing
half-imported), exported as JSONL, and taken from finished jobs.

An import is all or nothing: every line is read and checked first, and a single bad one
refuses the whole file (ImportRefused, listing each bad line by number and why), so a file
fixed and imported again never duplicates the half that went in the first time. A field this
module does not know ("expect" for "expected") is refused rather than ignored: ignoring it
would silently drop what the file meant to hold.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator

from .models import (
    CASE_NOTES_CHARS,
    CASE_TAGS_MAX,
    CASE_TEXT_CHARS,
    Case,
    Dataset,
    Job,
    JobStatus,
)
from .text import clean

IMPORT_MAX_BYTES = 5 * 1024 * 1024
IMPORT_MAX_CASES = 5000
# What one dataset may hold, however its cases came.
DATASET_MAX_CASES = 20000
# Jobs taken into a dataset by one request (a job page's button, a board filter, the API).
JOBS_MAX = 500
# Bad lines listed in one refusal; the count of all of them is given too.
ERRORS_LISTED = 100
TITLE_CHARS = Case._meta.get_field("title").max_length
TAG_CHARS = 50
FIELDS = ("title", "description", "expected", "notes", "tags")
FORMATS = ("jsonl", "csv")
TAG_SEPARATOR = ";"  # in CSV; JSONL has a list


class ImportRefused(Exception):
    """Nothing was imported: `errors` lists (line number, what is wrong), line 0 for the
    file as a whole; `bad_lines` counts every bad line, listed or not."""

    def __init__(self, errors: list[tuple[int, str]], bad_lines: int | None = None) -> None:
        self.errors = errors[:ERRORS_LISTED]
        self.bad_lines = len(errors) if bad_lines is None else bad_lines
        super().__init__(self.summary())

    def summary(self) -> str:
        if self.errors and self.errors[0][0] == 0:
            return f"Nothing was imported: {self.errors[0][1]}"
        s = "" if self.bad_lines == 1 else "s"
        return f"Nothing was imported: {self.bad_lines} bad line{s}."


class TooManyCases(Exception):
    """The dataset would hold more than DATASET_MAX_CASES cases."""


def clean_tags(value: object) -> list[str]:
    """Tags as stored: a list of short strings, stripped, without empties or repeats.
    ValueError says what is wrong."""
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise ValueError("tags must be a list of strings")
    tags = list(dict.fromkeys(clean(tag).strip() for tag in value if tag.strip()))
    if len(tags) > CASE_TAGS_MAX:
        raise ValueError(f"at most {CASE_TAGS_MAX} tags (there are {len(tags)})")
    if long := [tag for tag in tags if len(tag) > TAG_CHARS]:
        raise ValueError(f"a tag has at most {TAG_CHARS} characters ({long[0][:20]}… has more)")
    return tags


def split_tags(text: str, separator: str) -> list[str]:
    return [tag for tag in text.split(separator) if tag.strip()]


def case_fields(raw: dict) -> tuple[dict, list[str]]:
    """A case's stored fields from one record of a file, and what is wrong with it."""
    problems = []
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        problems.append(f"unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
    fields: dict = {}
    for name, limit, required in (
        ("title", TITLE_CHARS, True),
        ("description", CASE_TEXT_CHARS, True),
        ("expected", CASE_TEXT_CHARS, False),
        ("notes", CASE_NOTES_CHARS, False),
    ):
        value = raw.get(name)
        if value is None:
            value = ""
        if not isinstance(value, str):
            problems.append(f"{name} must be text")
            continue
        value = clean(value).strip()
        if required and not value:
            problems.append(f"missing {name}")
        elif len(value) > limit:
            problems.append(f"{name} is too long ({len(value):,} characters; at most {limit:,})")
        fields[name] = value
    try:
        fields["tags"] = clean_tags([] if raw.get("tags") is None else raw["tags"])
    except ValueError as exc:
        problems.append(str(exc))
    return fields, problems


def _records_jsonl(text: str) -> Iterator[tuple[int, dict | None, str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            yield number, None, f"invalid JSON ({reason})"
            continue
        if not isinstance(value, dict):
            yield number, None, "not a JSON object"
            continue
        yield number, value, ""


def _records_csv(text: str) -> Iterator[tuple[int, dict | None, str]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        yield 1, None, f"unreadable header row ({exc})"
        return
    names = [clean(name).strip().lower() for name in header]
    if "title" not in names or "description" not in names:
        yield 1, None, "the header row must name at least title and description"
        return
    unknown = sorted(set(names) - set(FIELDS))
    repeated = sorted({name for name in names if names.count(name) > 1})
    if unknown or repeated:
        problems = []
        if unknown:
            problems.append(f"unknown column{'s' * (len(unknown) > 1)}: {', '.join(unknown)}")
        if repeated:
            problems.append(f"repeated column: {', '.join(repeated)}")
        yield 1, None, "; ".join(problems)
        return
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, None, f"unreadable CSV ({exc})"
            return  # the reader cannot go on past it
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            yield start, None, f"{len(row)} columns where the header has {len(names)}"
            continue
        record: dict = dict(zip(names, row, strict=True))
        if isinstance(record.get("tags"), str):
            record["tags"] = split_tags(record["tags"], TAG_SEPARATOR)
        yield start, record, ""


def _decoded(data: bytes) -> str:
    """UTF-8 text (a byte-order mark tolerated), or a refusal naming each line that is not."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    errors = []
    body = data.removeprefix(b"\xef\xbb\xbf")
    for number, line in enumerate(body.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append((number, f"not UTF-8 (byte 0x{line[exc.start]:02x} at {exc.start + 1})"))
    raise ImportRefused(errors)


def parse_cases(data: bytes, fmt: str) -> list[dict]:
    """Every case in the file as stored fields, or ImportRefused listing every bad line."""
    if fmt not in FORMATS:
        raise ImportRefused([(0, f"unknown format {fmt!r}: use jsonl or csv")])
    if len(data) > IMPORT_MAX_BYTES:
        raise ImportRefused(
            [(0, f"the file has {len(data):,} bytes; at most {IMPORT_MAX_BYTES:,} are taken")]
        )
    text = _decoded(data)
    records = _records_jsonl(text) if fmt == "jsonl" else _records_csv(text)
    cases, errors, bad = [], [], 0
    for count, (number, record, problem) in enumerate(records, start=1):
        if count > IMPORT_MAX_CASES:
            raise ImportRefused(
                [(0, f"more than {IMPORT_MAX_CASES:,} cases (line {number}): split the file")]
            )
        fields, problems = ({}, [problem]) if problem else case_fields(record)
        if problems:
            bad += 1
            if len(errors) < ERRORS_LISTED:
                errors.append((number, "; ".join(problems)))
            continue
        cases.append(fields)
    if errors:
        raise ImportRefused(errors, bad)
    if not cases:
        raise ImportRefused([(0, "the file holds no cases")])
    return cases


def import_cases(dataset: Dataset, data: bytes, fmt: str) -> list[Case]:
    """Add every case of the file to `dataset`, or none (ImportRefused). Call it inside a
    transaction holding the dataset's row (actions.datasets.import_cases does)."""
    fields = parse_cases(data, fmt)
    check_room(dataset, len(fields))
    return Case.objects.bulk_create([Case(dataset=dataset, **f) for f in fields])


def check_room(dataset: Dataset, adding: int) -> None:
    held = dataset.cases.count()
    if held + adding > DATASET_MAX_CASES:
        raise TooManyCases(
            f"{dataset.name} holds {held:,} cases: {adding:,} more would pass the "
            f"{DATASET_MAX_CASES:,} a dataset may hold."
        )


def export_jsonl(dataset: Dataset) -> Iterator[str]:
    """The dataset's cases as JSONL lines, oldest first, read in chunks: `import_cases` of
    the lines gives the same cases."""
    rows = dataset.cases.order_by("id").values_list(*FIELDS)
    for row in rows.iterator(chunk_size=500):
        yield json.dumps(dict(zip(FIELDS, row, strict=True)), ensure_ascii=False) + "\n"


def case_from_job(dataset: Dataset, job: Job) -> Case:
    """A case with the job's title and description as its input and the job's result as
    its expected output (cut to the case's bound, which its notes then say)."""
    result = clean(job.result)
    notes = ""
    if len(result) > CASE_TEXT_CHARS:
        result = result[:CASE_TEXT_CHARS]
        notes = f"The job's result was cut to its first {CASE_TEXT_CHARS:,} characters."
    return Case(
        dataset=dataset,
        title=clean(job.title)[:TITLE_CHARS],
        description=clean(job.description)[:CASE_TEXT_CHARS],
        expected=result,
        notes=notes,
        source_job=job,
    )


def cases_from_jobs(dataset: Dataset, jobs: Iterable[Job]) -> tuple[list[Case], int]:
    """Add the completed ones of `jobs` (at most JOBS_MAX) to `dataset`: (the cases added,
    how many were skipped: not completed, or in the dataset already). Call it inside a
    transaction holding the dataset's row, so two requests never add one job twice."""
    jobs = list(jobs)
    if len(jobs) > JOBS_MAX:
        raise ValueError(f"At most {JOBS_MAX} jobs at once.")
    held = set(
        dataset.cases.filter(source_job__in=[job.pk for job in jobs]).values_list(
            "source_job_id", flat=True
        )
    )
    new, seen = [], set(held)
    for job in jobs:
        if job.status == JobStatus.COMPLETED and job.pk not in seen:
            seen.add(job.pk)
            new.append(case_from_job(dataset, job))
    if new:
        check_room(dataset, len(new))
    return Case.objects.bulk_create(new), len(jobs) - len(new)
