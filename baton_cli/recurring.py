"""`baton templates …`, `baton schedules …` and `baton jobs bulk …`: saved jobs, their
schedules, and one action on every job a filter selects."""

from __future__ import annotations

import argparse
import re
import sys
import uuid
from datetime import UTC, datetime, timedelta

from . import client, output
from .client import Api

BULK_ACTIONS = ("cancel", "retry", "rerun")
RELATIVE = re.compile(r"^(?P<n>\d{1,6})(?P<unit>[smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
SHOWN_JOBS = 10  # of a bulk preview's first jobs


def new_key() -> str:
    """An Idempotency-Key for one command: its retries reuse it, a new command makes another."""
    return str(uuid.uuid4())


def submit_template(api: Api, args: argparse.Namespace) -> dict:
    fields = {"timezone": args.timezone} if args.timezone else {}
    return api.submit_template(args.template, fields, args.idempotency_key or new_key())


def templates_list(api: Api, args: argparse.Namespace) -> int:
    found = api.templates()
    if args.json:
        print(output.dumps(found))
        return client.OK
    headers = ("NAME", "PRI", "TAGS", "SCHEDULES", "TITLE")
    rows = [
        (
            t["name"],
            t["priority"],
            ", ".join(t["tags"]) or "-",
            ", ".join(t["schedules"]) or "-",
            t["title"],
        )
        for t in found
    ]
    print(output.table(headers, rows, right={1}) if found else "No templates.")
    return client.OK


def templates_show(api: Api, args: argparse.Namespace) -> int:
    t = api.template(args.name)
    if args.json:
        print(output.dumps(t))
        return client.OK
    pins = ", ".join(f"{slug}@v{n}" for slug, n in (t.get("agent_versions") or {}).items())
    lines = [
        ("name", t["name"]),
        ("title", t["title"]),
        ("priority", t["priority"]),
        ("tags", ", ".join(t["tags"]) or "-"),
        ("budget", _budget(t)),
        ("review plan", "yes" if t["review_plan"] else "no"),
        ("pinned versions", pins or "-"),
        ("schedules", ", ".join(t["schedules"]) or "-"),
    ]
    print(_fields(lines))
    print()
    print(t["description"])
    return client.OK


def templates_submit(api: Api, args: argparse.Namespace) -> int:
    job = submit_template(api, args)
    print(output.dumps(job) if args.json else job["id"])
    return client.OK


def _budget(row: dict) -> str:
    parts = []
    if row.get("budget_tokens"):
        parts.append(f"{output.tokens(row['budget_tokens'])} tokens")
    if row.get("budget_cost"):
        parts.append(output.money(row["budget_cost"]))
    return ", ".join(parts) or "-"


def _fields(lines: list[tuple[str, object]]) -> str:
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in lines)


def schedules_list(api: Api, args: argparse.Namespace) -> int:
    found = api.schedules()
    if args.json:
        print(output.dumps(found))
        return client.OK
    headers = ("ID", "NAME", "TEMPLATE", "STATE", "EVERY", "NEXT RUN")
    rows = [
        (
            s["id"],
            s["name"],
            s["template"],
            "on" if s["enabled"] else "paused",
            f"{s['every']} ({s['timezone']})",
            output.when(s["next_run_at"]) if s["enabled"] else "-",
        )
        for s in found
    ]
    print(output.table(headers, rows, right={0}) if found else "No schedules.")
    return client.OK


def _show_schedule(schedule: dict, as_json: bool) -> int:
    if as_json:
        print(output.dumps(schedule))
        return client.OK
    lines = [
        ("id", schedule["id"]),
        ("name", schedule["name"]),
        ("template", schedule["template"]),
        ("state", "on" if schedule["enabled"] else "paused"),
        ("every", f"{schedule['every']} ({schedule['timezone']})"),
        ("missed runs", schedule["on_missed"]),
        ("overlapping runs", schedule["on_overlap"]),
        ("last run", output.when(schedule["last_run_at"])),
    ]
    print(_fields(lines))
    if schedule.get("next_runs"):
        label = "next runs" if schedule["enabled"] else "next runs if resumed"
        print(f"\n{label}:")
        for at in schedule["next_runs"]:
            print(f"  {output.when(at)}")
    if schedule.get("recent_runs"):
        print("\nrecent runs:")
        rows = [
            (
                output.when(r["due_at"]),
                r["outcome"],
                r["job"] or "-",
                r.get("job_status") or "-",
                r["note"],
            )
            for r in schedule["recent_runs"]
        ]
        print(output.table(("DUE", "OUTCOME", "JOB", "STATUS", "NOTE"), rows, right={2}))
    return client.OK


def schedules_show(api: Api, args: argparse.Namespace) -> int:
    return _show_schedule(api.schedule(args.id), args.json)


def schedules_create(api: Api, args: argparse.Namespace) -> int:
    given = {
        "name": args.name,
        "template": args.template,
        "cron": args.cron,
        "interval_s": args.every,
        "timezone": args.timezone,
        "on_missed": args.on_missed,
        "on_overlap": args.on_overlap,
        "enabled": False if args.paused else None,
    }
    schedule = api.create_schedule({k: v for k, v in given.items() if v is not None})
    return _show_schedule(schedule, args.json)


def schedules_pause(api: Api, args: argparse.Namespace) -> int:
    return _show_schedule(api.switch_schedule(args.id, False), args.json)


def schedules_resume(api: Api, args: argparse.Namespace) -> int:
    return _show_schedule(api.switch_schedule(args.id, True), args.json)


def schedules_delete(api: Api, args: argparse.Namespace) -> int:
    api.delete_schedule(args.id)
    if not args.json:
        print(f"schedule {args.id} deleted")
    return client.OK


def when_given(text: str) -> str:
    """--since/--until: `2h`, `30m`, `7d` ago, or an ISO date or date and time."""
    match = RELATIVE.match(text.strip())
    if match:
        ago = timedelta(**{UNITS[match["unit"]]: int(match["n"])})
        return (datetime.now(UTC) - ago).isoformat(timespec="seconds")
    try:
        if len(text) == 10:
            return datetime.fromisoformat(text).date().isoformat() + "T00:00:00"
        return datetime.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a time ago (30m, 2h, 7d) or an ISO date (2026-12-07[T09:00])"
        ) from None


def jobs_bulk(api: Api, args: argparse.Namespace) -> int:
    filters = {
        "q": args.q,
        "status": args.status,
        "priority": args.priority,
        "submitter": args.submitter,
        "tag": args.tag,
        "created_after": args.since,
        "created_before": args.until,
    }
    body = {"action": args.action, **{k: v for k, v in filters.items() if v is not None}}
    if not args.yes:
        preview = api.bulk({**body, "dry_run": True})
        print(output.dumps(preview) if args.json else _preview(preview))
        if args.dry_run or not preview["eligible"]:
            return client.OK
        if not sys.stdin.isatty():
            print("error: nothing done: add --yes to apply it (or --dry-run)", file=sys.stderr)
            return client.USAGE
        answer = input(f"{args.action.capitalize()} {preview['eligible']} jobs? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing done", file=sys.stderr)
            return client.OK
    result = api.bulk({**body, "dry_run": False})
    if args.json:
        print(output.dumps(result))
        return client.OK
    applied, skipped = result["applied"], result["skipped"]
    print(f"{args.action}: {len(applied)} jobs" + (f" ({_ids(applied)})" if applied else ""))
    for job_id, reason in sorted(skipped.items(), key=lambda item: int(item[0])):
        print(f"  skipped {job_id}: {reason}")
    return client.OK


def _ids(ids: list[int], most: int = 20) -> str:
    shown = ", ".join(str(i) for i in ids[:most])
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")


def _preview(preview: dict) -> str:
    lines = [
        f"{preview['action']}: {preview['count']} jobs match; {preview['eligible']} would "
        f"be {_done(preview['action'])}, {preview['count'] - preview['eligible']} skipped"
    ]
    for reason, n in sorted(preview.get("refused", {}).items()):
        lines.append(f"  {n} skipped: {reason}")
    shown = preview.get("jobs", [])[:SHOWN_JOBS]
    if shown:
        rows = [
            (j["id"], j["status"], "yes" if j["eligible"] else j["skip_reason"], j["title"])
            for j in shown
        ]
        lines += ["", output.table(("ID", "STATUS", "APPLIES", "TITLE"), rows, right={0})]
        if preview["count"] > len(shown):
            lines.append(f"… and {preview['count'] - len(shown)} more")
    return "\n".join(lines)


def _done(action: str) -> str:
    return {"cancel": "cancelled", "retry": "retried", "rerun": "re-run"}[action]


def add_commands(commands, jobs: argparse.ArgumentParser, common: list) -> None:
    """The templates and schedules commands, and `jobs bulk` under `jobs`."""
    step = _group(
        commands,
        "templates",
        "list, show and submit saved jobs",
        "Job templates: saved jobs, submitted in one command.",
        common,
    )
    step("list", templates_list, "list job templates")
    step("show", templates_show, "show a template").add_argument("name", metavar="NAME")
    sub = step("submit", templates_submit, "submit a template as a job and print its id")
    sub.add_argument("template", metavar="NAME")
    add_submit_options(sub)

    step = _group(
        commands,
        "schedules",
        "list, create, pause, resume and delete schedules",
        "Schedules: a template submitted on a cron expression or an interval.",
        common,
    )
    step("list", schedules_list, "list schedules")
    sub = step("create", schedules_create, "schedule a template")
    sub.add_argument("--name", required=True)
    sub.add_argument("--template", required=True, metavar="NAME")
    timing = sub.add_mutually_exclusive_group(required=True)
    timing.add_argument("--cron", metavar="EXPR", help='five fields, as "30 2 * * *"')
    timing.add_argument("--every", type=int, metavar="SECONDS", help="or every N seconds")
    sub.add_argument("--timezone", metavar="ZONE", help="e.g. Europe/Berlin (default: server's)")
    sub.add_argument("--on-missed", choices=("run_once", "skip"), help="default run_once")
    sub.add_argument(
        "--on-overlap", choices=("skip", "run", "cancel_previous"), help="default skip"
    )
    sub.add_argument("--paused", action="store_true", help="create it paused")
    for name, run, summary in (
        ("show", schedules_show, "show a schedule, its next runs and its recent ones"),
        ("pause", schedules_pause, "pause a schedule"),
        ("resume", schedules_resume, "resume a schedule (from now on)"),
        ("delete", schedules_delete, "delete a schedule (the jobs it made stay)"),
    ):
        step(name, run, summary).add_argument("id", type=int, metavar="ID")

    steps = jobs.add_subparsers(title="commands", metavar="COMMAND")
    summary = "cancel, retry or re-run every job a filter selects, after a preview"
    sub = steps.add_parser("bulk", parents=common, help=summary, description=summary)
    sub.set_defaults(run=jobs_bulk)
    sub.add_argument("action", choices=BULK_ACTIONS)
    sub.add_argument("--tag")
    sub.add_argument("--status", help="failed, cancelled, working, ...")
    sub.add_argument("--priority", type=int)
    sub.add_argument("--submitter", metavar="USERNAME")
    sub.add_argument("--q", metavar="TEXT", help="text in the title or description")
    sub.add_argument("--since", type=when_given, help="created at or after: 2h, 7d, 2026-12-07")
    sub.add_argument("--until", type=when_given, help="created before: 30m, 2026-12-07T09:00")
    sub.add_argument("--dry-run", action="store_true", help="print the preview only")
    sub.add_argument("--yes", action="store_true", help="apply without asking")


def add_submit_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--timezone", metavar="ZONE", help="where a template's {date}, {time}... are read"
    )
    sub.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="the same key within 24 h returns the job it made (default: a new key per "
        "command, which its own retries reuse)",
    )


def _group(commands, name: str, summary: str, description: str, common: list):
    """A command with commands of its own; the function that adds one."""
    group = commands.add_parser(name, help=summary, description=description)
    steps = group.add_subparsers(title="commands", metavar="COMMAND")

    def step(name: str, run, summary: str) -> argparse.ArgumentParser:
        sub = steps.add_parser(name, parents=common, help=summary, description=summary)
        sub.set_defaults(run=run)
        return sub

    return step
