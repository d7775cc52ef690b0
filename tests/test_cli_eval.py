"""`baton eval run` and `baton eval compare`: their output and exit codes against the API in
this process, and the installed command against a stack whose worker runs the cases."""

from __future__ import annotations

import os
import re
import subprocess

import httpx
import pytest

from agents import experiments
from agents.models import Agent, ApiToken, Experiment, ExperimentStatus
from baton_cli import main as cli
from baton_cli.main import main

from .experiments_support import code_scorers, dataset, finish
from .stack import VENV_BIN
from .test_cli import DjangoTransport


class ExperimentTransport(DjangoTransport):
    """Runs `before_read(experiment_id)` before each read of an experiment, so a test can end
    its cases while the command waits for it."""

    def __init__(self, before_read=None) -> None:
        super().__init__()
        self.before_read = before_read

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        found = re.search(r"/experiments/(\d+)$", request.url.path)
        if request.method == "GET" and found and self.before_read:
            self.before_read(int(found[1]))
        return super().handle_request(request)


def _end_cases(results: list[str] | None = None, tokens: int = 100):
    """Each read of the experiment ends its started cases (answering `results` in turn)."""
    answers = iter(results or [])

    def end(experiment_id: int) -> None:
        experiment = Experiment.objects.get(pk=experiment_id)
        for case in experiment.cases.exclude(job=None).filter(job__status="queued"):
            finish(case.job, next(answers, "Hello from the simulator."), tokens=tokens)
        experiments.advance(experiment_id)

    return end


@pytest.fixture
def baton(users, monkeypatch, capsys, no_broker):
    """Run `baton` in process as the operator (or `user`); the exit code, stdout, stderr."""
    secrets = {name: ApiToken.objects.issue(user, "cli")[1] for name, user in users.items()}
    monkeypatch.setattr(cli, "POLL_S", 0)
    Agent.objects.create(slug="coder", name="Coder", specialties=["coding"])
    code_scorers()

    def run(*argv: str, user: str = "operator", transport=None):
        monkeypatch.setenv("BATON_TOKEN", secrets[user])
        code = main(list(argv), transport=transport or ExperimentTransport())
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.mark.django_db
def test_eval_run_starts_an_experiment_and_prints_its_id_and_page(baton):
    dataset(3)
    code, out, err = baton(
        "eval", "run", "greetings", "--agent", "coder@1", "--scorer", "says-simulator"
    )
    experiment = Experiment.objects.get()
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        str(experiment.pk),
        f"http://testserver/experiments/{experiment.pk}/",
    ]
    assert experiment.agent_versions == {"coder": 1}
    assert [s.slug for s in experiment.scorers.all()] == ["says-simulator"]


@pytest.mark.django_db
def test_eval_run_waits_and_prints_each_scorers_mean_interval_and_pass_rate(baton):
    dataset(3)
    transport = ExperimentTransport(_end_cases(["Hello, simulator.", "Hi.", "The simulator."]))
    code, out, err = baton("eval", "run", "greetings", "--wait", transport=transport)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    experiment = Experiment.objects.get()
    assert experiment.status == ExperimentStatus.COMPLETED
    assert lines[2].startswith(f"experiment {experiment.pk} completed · 3/3 cases done · ")
    assert lines[3].split() == ["SCORER", "N", "MEAN", "[95%", "INTERVAL]", "PASS", "THRESHOLD"]
    # Says simulator: 1, 0, 1 → mean 0.667; sd 0.577, se 0.333, t(2) 4.303 → ±1.434
    says = next(line for line in lines if line.startswith("Says simulator"))
    assert says.split() == ["Says", "simulator", "3", "0.667", "[-0.768,", "2.101]", "67%", "0.50"]
    assert any(line.startswith("Not empty (E)") and "100%" in line for line in lines)


@pytest.mark.django_db
def test_eval_run_exits_1_when_its_budget_stops_it(baton):
    dataset(3)
    transport = ExperimentTransport(_end_cases(tokens=500))
    argv = ("eval", "run", "greetings", "--budget-tokens", "400", "--concurrency", "1")
    code, out, err = baton(*argv, "--wait", transport=transport)
    experiment = Experiment.objects.get()
    assert experiment.status == ExperimentStatus.STOPPED
    assert code == 1
    assert err == f"experiment {experiment.pk} stopped: {experiment.status_reason}\n"
    assert f"experiment {experiment.pk} stopped · 1/3 cases done" in out


@pytest.mark.django_db
def test_eval_run_refusals_exit_with_their_codes(baton):
    dataset(1)
    code, out, err = baton("eval", "run", "greetings", "--agent", "coder")
    assert (code, out) == (2, "")
    assert "give it as slug@version" in err
    code, _, err = baton("eval", "run", "nope")
    assert code == 2
    assert err.startswith("error: Validation failed: ")
    assert "dataset: No such dataset." in err
    code, _, err = baton("eval", "run", "greetings", user="viewer")
    assert code == 3
    assert not Experiment.objects.exists()


@pytest.mark.django_db
def test_eval_compare_prints_wins_means_and_whether_the_difference_is_significant(baton):
    data = dataset(3)
    ids = []
    for results in (["Hi.", "Hi.", "Hello, simulator."], ["Simulator!"] * 3):
        transport = ExperimentTransport(_end_cases(results))
        code, out, _ = baton("eval", "run", data.slug, "--wait", transport=transport)
        ids.append(int(out.splitlines()[0]))
    code, out, err = baton("eval", "compare", *map(str, ids))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"A: experiment {ids[0]} ")
    assert lines[1].startswith(f"B: experiment {ids[1]} ")
    says = next(line for line in lines if line.startswith("Says simulator"))
    # B wins cases 1 and 2, ties 3; paired differences 1, 1, 0: mean 0.667 ± 1.434
    assert says.split()[2:] == [
        "2",
        "0",
        "1",
        "0.333",
        "1.000",
        "0.667",
        "[-0.768,",
        "2.101]",
        "no",
    ]

    code, out, _ = baton("eval", "compare", str(ids[0]), "999999")
    assert code == 4


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_the_installed_command_runs_an_experiment_end_to_end(stack, seeded):
    executable = VENV_BIN / "baton"
    _, secret = ApiToken.objects.issue(seeded["bob"], "cli eval end to end")
    dataset(2, slug="cli-greetings")
    code_scorers()
    env = {**os.environ, "BATON_URL": stack.base_url, "BATON_TOKEN": secret}
    argv = ["eval", "run", "cli-greetings", "--scorer", "says-simulator", "--agent", "coder@1"]
    ran = subprocess.run(
        [str(executable), *argv, "--wait"], env=env, capture_output=True, text=True, timeout=150
    )
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    experiment = Experiment.objects.get(pk=int(lines[0]))
    assert experiment.status == ExperimentStatus.COMPLETED
    assert lines[1] == f"{stack.base_url}/experiments/{experiment.pk}/"
    says = next(line for line in lines if line.startswith("Says simulator"))
    assert says.split()[2:] == ["2", "1.000", "[1.000,", "1.000]", "100%", "0.50"]
