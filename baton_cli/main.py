"""`baton`: submit, list, watch, cancel, retry and re-run jobs, and list agents, over the JSON
API."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

import httpx

from . import client, output, recurring
from .client import Api, ApiError
from .follow import follow

DEFAULT_URL = "http://127.0.0.1:8000"
# How often `eval run --wait` reads the experiment again.
POLL_S = 2.0
PIN = re.compile(r"^(?P<slug>[-a-zA-Z0-9_]+)@v?(?P<number>\d{1,9})$")

EPILOG = f"""\
environment:
  BATON_URL     the server (default {DEFAULT_URL}); --url overrides it
  BATON_TOKEN   an API token (create one on Baton's API tokens page); --token overrides it

output:
  columns for people by default; --json prints one JSON document on stdout for scripts.
  Errors go to stderr as "error: <title>: <detail>".

exit codes:
  0  done (with --wait and watch: the job or experiment completed)
  1  the job failed or was cancelled, or the experiment stopped or was cancelled
  2  usage error, or values the server refused (422)
  3  not authenticated or not allowed (401, 403, no token)
  4  not found (404)
  5  conflict: the action does not apply to the job as it is now (409)
  6  server or connection error (5xx, 429, no answer)

examples:
  baton submit --title "Haiku" --description "About the sea." --wait --json | jq -r .result
  baton eval run support-questions --agent reviewer@2 --budget-cost 0.50 --wait
  baton eval compare 7 8
  baton submit --template nightly-digest --tag manual
  baton schedules create --name nightly --template nightly-digest --cron "30 2 * * *" \
      --timezone Europe/Berlin
  baton jobs bulk retry --tag nightly --status failed --since 12h --dry-run
"""


def submit(api: Api, args: argparse.Namespace) -> int:
    if args.template:
        job = recurring.submit_template(api, args)
    else:
        description = sys.stdin.read() if args.description == "-" else args.description
        given = {
            "title": args.title,
            "description": description,
            "priority": args.priority,
            "budget_tokens": args.budget_tokens,
            "budget_cost": args.budget_cost,
            "review_plan": args.review,
            "tags": args.tag,
        }
        fields = {k: v for k, v in given.items() if v is not None}
        job = api.submit(fields, args.idempotency_key or recurring.new_key())
    if not args.wait:
        print(output.dumps(job) if args.json else job["id"])
        return client.OK
    if not args.json:
        print(job["id"], flush=True)
    # Progress is for a person at a terminal; stdout keeps only the id and the outcome.
    line = output.ProgressLine(sys.stderr) if sys.stderr.isatty() else None
    job = follow(api, job["id"], _shown_on(line))
    if line:
        line.end()
    if args.json:
        print(output.dumps(job))
    elif job["status"] == "completed":
        print(job["result"])
    return _outcome(job, quiet=args.json)


def submit_mistake(args: argparse.Namespace) -> str:
    """What is wrong with submit's arguments together, or ""."""
    job_fields = ("title", "description", "priority", "budget_tokens", "budget_cost", "tag")
    if args.template:
        given = [f"--{name.replace('_', '-')}" for name in job_fields if getattr(args, name)]
        given += ["--review"] if args.review else []
        if given:
            return f"--template submits the template as saved: drop {', '.join(given)}"
        return ""
    if args.timezone:
        return "--timezone fills a template's placeholders: give it with --template"
    missing = [f"--{name}" for name in ("title", "description") if args.__dict__[name] is None]
    return f"the following arguments are required: {', '.join(missing)}" if missing else ""


def watch(api: Api, args: argparse.Namespace) -> int:
    line = None if args.json else output.ProgressLine(sys.stdout)
    job = follow(api, args.id, _shown_on(line))
    if line:
        line.end()
    else:
        print(output.dumps(job))
    return _outcome(job, quiet=args.json)


def _shown_on(line: output.ProgressLine | None):
    return (lambda job: line.show(output.progress(job))) if line else (lambda job: None)


def _outcome(job: dict, quiet: bool) -> int:
    if job["status"] == "completed":
        return client.OK
    if not quiet:
        why = job.get("error") or job.get("status_reason") or ""
        print(f"job {job['id']} {job['status']}" + (f": {why}" if why else ""), file=sys.stderr)
    return client.JOB_FAILED


def jobs(api: Api, args: argparse.Namespace) -> int:
    found = api.jobs(status=args.status, limit=args.limit, tag=args.tag)
    if args.json:
        print(output.dumps(found))
    else:
        print(output.jobs_table(found) if found else "No jobs.")
    return client.OK


def cancel(api: Api, args: argparse.Namespace) -> int:
    return _show_job(api.cancel(args.id), args.json)


def retry(api: Api, args: argparse.Namespace) -> int:
    return _show_job(api.retry(args.id), args.json)


def rerun(api: Api, args: argparse.Namespace) -> int:
    fields = {"description": args.description, "agent": args.agent}
    job = api.rerun(args.subtask, {k: v for k, v in fields.items() if v is not None})
    return _show_job(job, args.json)


def _show_job(job: dict, as_json: bool) -> int:
    print(output.dumps(job) if as_json else output.progress(job))
    return client.OK


def agents(api: Api, args: argparse.Namespace) -> int:
    found = api.agents()
    if args.json:
        print(output.dumps(found))
    else:
        print(output.agents_table(found) if found else "No agents.")
    return client.OK


def eval_run(api: Api, args: argparse.Namespace) -> int:
    pins = {}
    for pin in args.agent or []:
        match = PIN.match(pin)
        if match is None:
            print(f"error: --agent {pin}: give it as slug@version (reviewer@2)", file=sys.stderr)
            return client.USAGE
        pins[match["slug"]] = int(match["number"])
    given = {
        "dataset": args.dataset,
        "name": args.name,
        "scorers": args.scorer,
        "agent_versions": pins or None,
        "budget_tokens": args.budget_tokens,
        "budget_cost": args.budget_cost,
        "concurrency": args.concurrency,
    }
    experiment = api.start_experiment({k: v for k, v in given.items() if v is not None})
    if not args.json:
        print(experiment["id"])
        if experiment.get("url"):
            print(experiment["url"])
    if not args.wait:
        if args.json:
            print(output.dumps(experiment))
        return client.OK
    sys.stdout.flush()
    line = output.ProgressLine(sys.stderr) if sys.stderr.isatty() else None
    while experiment["status"] == "running":
        if line:
            line.show(output.experiment_progress(experiment))
        time.sleep(POLL_S)
        experiment = api.experiment(experiment["id"])
    if line:
        line.end()
    if args.json:
        print(output.dumps(experiment))
    else:
        print(output.experiment_progress(experiment))
        print(output.scorers_table(experiment))
    if experiment["status"] == "completed":
        return client.OK
    if not args.json:
        why = experiment.get("status_reason") or ""
        print(
            f"experiment {experiment['id']} {experiment['status']}" + (f": {why}" if why else ""),
            file=sys.stderr,
        )
    return client.JOB_FAILED


def eval_compare(api: Api, args: argparse.Namespace) -> int:
    comparison = api.compare(args.a, args.b)
    print(output.dumps(comparison) if args.json else output.comparison_table(comparison))
    return client.OK


def parser() -> argparse.ArgumentParser:
    connection = argparse.ArgumentParser(add_help=False)
    # Given after a subcommand they must not reset what was given before it.
    connection.add_argument("--url", default=argparse.SUPPRESS, help="Baton's address")
    connection.add_argument("--token", default=argparse.SUPPRESS, help="an API token")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="one JSON document on stdout")

    top = argparse.ArgumentParser(
        prog="baton",
        description="Drive Baton from a shell or a script, over its JSON API.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--url", help=f"Baton's address (BATON_URL, default {DEFAULT_URL})")
    top.add_argument("--token", help="an API token (BATON_TOKEN)")
    commands = top.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, run, summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, parents=[connection, as_json], help=summary, description=summary
        )
        sub.set_defaults(run=run)
        return sub

    sub = command("submit", submit, "submit a job and print its id")
    sub.set_defaults(mistake=submit_mistake)
    sub.add_argument("--template", metavar="NAME", help="submit a saved job template instead")
    sub.add_argument("--title", help="required without --template")
    sub.add_argument("--description", help="the task, or - to read it from stdin")
    sub.add_argument("--priority", type=int, help="0 (lowest) to 9")
    sub.add_argument("--budget-tokens", type=int, metavar="N", help="stop after N tokens")
    sub.add_argument("--budget-cost", metavar="USD", help="stop after spending this much")
    sub.add_argument(
        "--review", action="store_true", help="stop after planning until the plan is approved"
    )
    sub.add_argument("--tag", action="append", metavar="TAG", help="tag the job (repeatable)")
    recurring.add_submit_options(sub)
    sub.add_argument(
        "--wait",
        action="store_true",
        help="follow the job until it ends, then print its result (or, with --json, the job)",
    )

    sub = command("jobs", jobs, "list jobs, newest first (jobs bulk: act on many)")
    sub.add_argument("--status", help="queued, planning, waiting, working, synthesizing, ...")
    sub.add_argument("--tag", help="only jobs with this tag")
    sub.add_argument("--limit", type=int, help="how many (default 25, at most 100)")
    recurring.add_commands(commands, sub, [connection, as_json])

    sub = command("watch", watch, "follow a job live until it ends")
    sub.add_argument("id", type=int, metavar="ID")
    for name, run, summary in (
        ("cancel", cancel, "cancel a job"),
        ("retry", retry, "resume a failed or cancelled job"),
    ):
        command(name, run, summary).add_argument("id", type=int, metavar="ID")
    sub = command("rerun", rerun, "re-run a job from a subtask; the steps before it are copied")
    sub.add_argument("subtask", type=int, metavar="SUBTASK_ID")
    sub.add_argument("--description", help="the subtask's new input")
    sub.add_argument("--agent", metavar="SLUG", help="the agent to run it")
    command("agents", agents, "list agents with their live metrics")

    evaluation = commands.add_parser(
        "eval",
        help="run a dataset as an experiment, compare two",
        description="Run a dataset's cases as an experiment, scored; compare two experiments.",
    )
    steps = evaluation.add_subparsers(title="commands", metavar="COMMAND")

    def step(name: str, run, summary: str) -> argparse.ArgumentParser:
        sub = steps.add_parser(
            name, parents=[connection, as_json], help=summary, description=summary
        )
        sub.set_defaults(run=run)
        return sub

    sub = step("run", eval_run, "run a dataset as an experiment and print its id and page")
    sub.add_argument("dataset", metavar="DATASET", help="the dataset's slug")
    sub.add_argument(
        "--agent",
        action="append",
        metavar="SLUG@VERSION",
        help="run this agent at this version (repeat for more); others run their current one",
    )
    sub.add_argument(
        "--scorer",
        action="append",
        metavar="SLUG",
        help="score with this scorer (repeat for more; default: every enabled scorer)",
    )
    sub.add_argument("--name", help="the experiment's name (default: the dataset and versions)")
    sub.add_argument("--budget-tokens", type=int, metavar="N", help="stop after N tokens")
    sub.add_argument("--budget-cost", metavar="USD", help="stop after spending this much")
    sub.add_argument("--concurrency", type=int, metavar="N", help="cases at once (default 4)")
    sub.add_argument(
        "--wait",
        action="store_true",
        help="wait until it ends, then print each scorer's mean, 95%% interval and pass rate",
    )
    sub = step("compare", eval_compare, "compare experiment B with A, scorer by scorer")
    sub.add_argument("a", type=int, metavar="A", help="the experiment compared against")
    sub.add_argument("b", type=int, metavar="B")
    return top


def main(argv: list[str] | None = None, transport: httpx.BaseTransport | None = None) -> int:
    top = parser()
    try:
        args = top.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else client.USAGE
    if not hasattr(args, "run"):
        top.print_help(sys.stderr)
        return client.USAGE
    if mistake := getattr(args, "mistake", lambda _: "")(args):
        print(f"baton: error: {mistake}", file=sys.stderr)
        return client.USAGE
    token = args.token or os.environ.get("BATON_TOKEN", "")
    if not token:
        print("error: no API token: set BATON_TOKEN or pass --token", file=sys.stderr)
        return client.AUTH
    api = Api(args.url or os.environ.get("BATON_URL") or DEFAULT_URL, token, transport)
    try:
        return args.run(api, args)
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    finally:
        api.close()
