"""The experiment pages: the list, one experiment's figures (against hand-worked numbers),
its live region, two compared, the exports, and who may do what."""

import csv
import io
import json
import re

import pytest

from agents import actions
from agents.models import (
    Agent,
    AuditEntry,
    Case,
    Dataset,
    Experiment,
    ExperimentStatus,
    JobStatus,
)

from . import experiment_rows as rows
from .cast import person

pytestmark = pytest.mark.django_db

# Four cases scored 0.4, 0.5, 0.6, 0.5: mean 0.5; sample sd √(0.02/3) = 0.08165, standard
# error 0.040825; t(3) = 3.182, so the 95 % interval is 0.5 ± 0.12991 = [0.370, 0.630];
# three of four at or above the threshold 0.5 pass: 75 %.
A_VALUES = [0.4, 0.5, 0.6, 0.5]
# Against A, case by case: higher, tied, higher, lower.
B_VALUES = [0.6, 0.5, 0.9, 0.4]


@pytest.fixture
def exact():
    return rows.scorer("Exact", threshold=0.5)


def test_the_list_shows_each_experiment_with_its_progress_and_cost(client, viewer, exact):
    rows.experiment("Baseline", {exact: A_VALUES}, user=viewer)
    html = client.get("/experiments/").content.decode()
    assert "Baseline" in html and "Outages" in html
    assert "4/4" in html and "$0.0400" in html and "carol" in html
    assert 'href="/experiments/"' in html  # the nav names the page


def test_the_page_shows_each_scorers_mean_interval_and_pass_rate(client, viewer, exact):
    made = rows.experiment("Baseline", {exact: A_VALUES})
    response = client.get(f"/experiments/{made.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    stats = html[html.index('id="scorer-1"') :]
    stats = stats[: stats.index("</tr>")]
    assert ">0.500<" in stats
    assert "0.370 – 0.630" in stats
    assert "75 %" in stats and "≥ 0.50" in stats
    assert "4/4 done" in html and "400 tokens" in html
    for n in range(1, 5):
        assert f"output {n}" in html
    assert f'href="/experiments/{made.pk}/export.csv"' in html


def test_the_page_names_the_versions_it_pinned(client, viewer, exact):
    Agent.objects.create(name="Reviewer", slug="reviewer", specialties=["review"])
    made = rows.experiment("Pinned", {exact: [1.0]}, agent_versions={"reviewer": 2})
    html = client.get(f"/experiments/{made.pk}/").content.decode()
    assert "<strong>Reviewer v2</strong> (chosen)" in html


def test_the_page_names_the_versions_its_cases_ran_with(client, viewer, exact):
    from agents.models import Subtask

    coder = Agent.objects.create(name="Coder", slug="coder", specialties=["coding"])
    made = rows.experiment("Current", {exact: [1.0, 0.5]})
    for case in made.cases.all():
        Subtask.objects.create(
            job=case.job, key="code", type="coding", agent=coder, agent_version=3
        )
    html = client.get(f"/experiments/{made.pk}/").content.decode()
    assert "Versions: Coder v3." in html  # ran with its current version then, kept


def test_a_running_experiment_polls_its_live_region_and_an_ended_one_does_not(
    client, viewer, exact
):
    running = rows.experiment(
        "Running",
        {exact: [1.0, None]},
        status=ExperimentStatus.RUNNING,
        job_statuses=[JobStatus.COMPLETED, JobStatus.WORKING],
    )
    html = client.get(f"/experiments/{running.pk}/").content.decode()
    assert f'hx-get="/experiments/{running.pk}/" hx-trigger="every' in html
    region = client.get(
        f"/experiments/{running.pk}/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="experiment-live"
    ).content.decode()
    assert region.lstrip().startswith('<div id="experiment-live"') and "<html" not in region
    assert "1/2 done" in region and "1 running" in region

    Experiment.objects.filter(pk=running.pk).update(status=ExperimentStatus.COMPLETED)
    region = client.get(
        f"/experiments/{running.pk}/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="experiment-live"
    ).content.decode()
    assert "hx-trigger" not in region and "Completed" in region


def test_the_compare_page_counts_wins_losses_and_ties(client, viewer, exact):
    a = rows.experiment("A", {exact: A_VALUES})
    b = rows.experiment(
        "B", {exact: B_VALUES}, results=["output 1", "output 2 changed", "output 3", "output 4"]
    )
    response = client.get(f"/experiments/{a.pk}/compare/{b.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    row = html[html.index('id="compare-1"') :]
    row = row[: row.index("</tr>")]
    assert ">0.500<" in row and ">0.600<" in row  # the means
    assert "2 / 1 / 1" in row  # B higher on cases 1 and 3, lower on 4, tied on 2
    assert "0.100" in row  # B − A
    pair = html[html.index('id="pair-2"') :]
    pair = pair[: pair.index("</article>")]
    assert "outputs differ" in pair and "output 2 changed" in pair
    assert 'class="line-diff"' in pair


def test_the_compare_page_names_the_versions_that_differ(client, viewer, exact):
    Agent.objects.create(name="Reviewer", slug="reviewer", specialties=["review"])
    a = rows.experiment("A", {exact: [0.5]}, agent_versions={"reviewer": 1})
    b = rows.experiment("B", {exact: [0.5]}, agent_versions={"reviewer": 2})
    html = client.get(f"/experiments/{a.pk}/compare/{b.pk}/").content.decode()
    assert "Reviewer v1" in html and "Reviewer v2" in html


def test_the_list_pair_form_goes_to_the_comparison(client, viewer, exact):
    a = rows.experiment("A", {exact: [0.5]})
    b = rows.experiment("B", {exact: [0.5]})
    response = client.get(f"/experiments/compare/?a={a.pk}&b={b.pk}")
    assert response.status_code == 302
    assert response["Location"] == f"/experiments/{a.pk}/compare/{b.pk}/"


def test_the_csv_export_cannot_run_a_formula_in_a_spreadsheet(client, viewer, exact):
    results = ['=HYPERLINK("http://evil")', "+1+1", "-2", "@SUM(A1)"]
    made = rows.experiment("Export", {exact: [1.0, 1.0, 0.0, 0.0]}, results=results)
    response = client.get(f"/experiments/{made.pk}/export.csv")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="experiment-{made.pk}.csv"'
    table = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["output"] for row in table] == ["'" + r for r in results]
    assert [row["title"] for row in table] == ["Case 1", "Case 2", "Case 3", "Case 4"]


def test_the_jsonl_export_has_a_line_per_case(client, viewer, exact):
    made = rows.experiment("Export", {exact: [1.0, 0.0]}, results=["=1", "plain"])
    response = client.get(f"/experiments/{made.pk}/export.jsonl")
    assert response["Content-Disposition"].startswith("attachment;")
    lines = [json.loads(line) for line in response.content.decode().splitlines()]
    assert [line["output"] for line in lines] == ["=1", "plain"]  # JSON is not a spreadsheet
    assert lines[0]["score:Exact"] == 1.0


def test_a_viewer_reads_every_page_but_gets_no_controls(client, viewer, exact):
    a = rows.experiment("A", {exact: [0.5]}, status=ExperimentStatus.RUNNING)
    b = rows.experiment("B", {exact: [0.5]})
    listing = client.get("/experiments/").content.decode()
    assert "New experiment" not in listing and "Start experiment" not in listing
    detail = client.get(f"/experiments/{a.pk}/").content.decode()
    assert "Cancel experiment" not in detail and "Rate its outputs" not in detail
    assert client.get(f"/experiments/{a.pk}/compare/{b.pk}/").status_code == 200
    assert client.post("/experiments/new/", {}).status_code == 403
    assert client.post(f"/experiments/{a.pk}/cancel/").status_code == 403
    assert Experiment.objects.get(pk=a.pk).status == ExperimentStatus.RUNNING


def test_someone_without_a_role_is_refused_every_page(client, exact):
    from .conftest import logged_in

    logged_in(client, "eve")
    made = rows.experiment("A", {exact: [0.5]})
    for url in (
        "/experiments/",
        f"/experiments/{made.pk}/",
        f"/experiments/{made.pk}/export.csv",
        f"/experiments/{made.pk}/export.jsonl",
        f"/experiments/{made.pk}/compare/{made.pk}/",
        f"/experiments/{made.pk}/annotate/",
    ):
        assert client.get(url).status_code == 403, url
    assert client.post("/experiments/new/", {}).status_code == 403
    assert client.post(f"/experiments/{made.pk}/cancel/").status_code == 403


def test_an_operator_sees_the_new_experiment_form_and_a_cancel_button(client, operator, exact):
    made = rows.experiment("A", {exact: [0.5]}, status=ExperimentStatus.RUNNING)
    listing = client.get("/experiments/").content.decode()
    assert "Start experiment" in listing and 'action="/experiments/new/"' in listing
    detail = client.get(f"/experiments/{made.pk}/").content.decode()
    assert f'action="/experiments/{made.pk}/cancel/"' in detail


def test_an_operator_cancels_a_running_experiment(client, operator, exact):
    made = rows.experiment(
        "A", {exact: [None]}, status=ExperimentStatus.RUNNING, job_statuses=[JobStatus.WORKING]
    )
    response = client.post(f"/experiments/{made.pk}/cancel/")
    assert response.status_code == 302 and response["Location"] == f"/experiments/{made.pk}/"
    assert Experiment.objects.get(pk=made.pk).status == ExperimentStatus.CANCELLED
    assert AuditEntry.objects.filter(actor=operator, action__contains="experiment").exists()


def test_an_invalid_new_experiment_shows_its_errors_in_place(client, operator, exact):
    response = client.post("/experiments/new/", {"budget_tokens": "-5"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'role="alert"' in html and "Start experiment" in html
    assert not Experiment.objects.exists()


def test_an_operator_starts_an_experiment_from_the_form(client, operator, exact, no_broker):
    dataset = Dataset.objects.create(name="Outages", slug="outages")
    for n in (1, 2):
        Case.objects.create(dataset=dataset, title=f"Case {n}", description=f"Input {n}")
    response = client.post(
        "/experiments/new/", {"dataset": "outages", "scorers": ["exact"], "concurrency": "2"}
    )
    made = Experiment.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/experiments/{made.pk}/"
    assert made.created_by == operator and made.cases.count() == 2
    assert list(made.scorers.all()) == [exact]
    assert AuditEntry.objects.filter(actor=operator, action="start_experiment").exists()


def test_the_form_offers_each_enabled_agents_versions_and_runs_the_one_chosen(
    client, operator, exact, no_broker
):
    reviewer = Agent.objects.create(name="Reviewer", slug="reviewer", specialties=["review"])
    actions.edit_agent(reviewer, {"system_prompt": "Be strict."}, user=person("dave"))
    Agent.objects.create(name="Idle", slug="idle", specialties=["x"], enabled=False)
    html = client.get("/experiments/").content.decode()
    select = html[html.index('name="pin-reviewer"') :]
    select = select[: select.index("</select>")]
    assert re.findall(r'<option value="(\d*)"[^>]*>([^<]*)<', select) == [
        ("", "current (v2)"),
        ("2", "Reviewer v2"),
        ("1", "Reviewer v1"),
    ]
    assert 'name="pin-idle"' not in html

    dataset = Dataset.objects.create(name="Outages", slug="outages")
    Case.objects.create(dataset=dataset, title="Case 1", description="Input 1")
    response = client.post(
        "/experiments/new/", {"dataset": "outages", "scorers": ["exact"], "pin-reviewer": "1"}
    )
    made = Experiment.objects.get()
    assert response.status_code == 302
    assert made.agent_versions == {"reviewer": 1} and made.cases.get().job.agent_versions == {
        "reviewer": 1
    }
    assert (
        client.post("/experiments/new/", {"dataset": "outages", "pin-reviewer": "7"}).status_code
        == 400
    )


def test_a_large_experiment_shows_its_cases_by_pages_and_polls_the_page_it_shows(
    client, viewer, exact
):
    made = rows.experiment("Large", {exact: [1.0] * 55}, status=ExperimentStatus.RUNNING)
    first = client.get(f"/experiments/{made.pk}/").content.decode()
    assert 'id="case-50"' in first and 'id="case-51"' not in first
    assert "55/55 done" in first and "(1–50 of 55)" in first
    second = client.get(f"/experiments/{made.pk}/?page=2").content.decode()
    assert 'id="case-51"' in second and 'id="case-50"' not in second
    assert f'hx-get="/experiments/{made.pk}/?page=2"' in second
