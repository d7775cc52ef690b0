"""Datasets, scorers, experiments and scores in the admin: listed and shown, never changed
there (their pages and the API change them, audited)."""

import pytest

from agents.models import Case, Dataset, Experiment, ExperimentCase, Job, Score, Scorer

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows():
    dataset = Dataset.objects.create(name="Haiku", slug="haiku")
    case = Case.objects.create(dataset=dataset, title="Queues", description="About queues.")
    scorer = Scorer.objects.create(name="Not empty", slug="not-empty", kind="length")
    experiment = Experiment.objects.create(name="First", dataset=dataset, dataset_name="Haiku")
    job = Job.objects.create(title="Queues", description="About queues.", result="A haiku.")
    ExperimentCase.objects.create(
        experiment=experiment, position=1, case=case, title=case.title, job=job
    )
    score = Score.objects.create(
        job=job, scorer=scorer, scorer_name=scorer.name, source="code", value=1.0, passed=True
    )
    return dataset, scorer, experiment, score


def test_each_is_listed_and_shown_read_only(admin_client, rows):
    for row in rows:
        name = row._meta.model_name
        listed = admin_client.get(f"/admin/agents/{name}/")
        assert listed.status_code == 200, name
        shown = admin_client.get(f"/admin/agents/{name}/{row.pk}/change/")
        assert shown.status_code == 200, name
        assert b'type="submit"' not in shown.content or b"Save" not in shown.content, name
        assert admin_client.get(f"/admin/agents/{name}/add/").status_code == 403, name
        assert admin_client.post(f"/admin/agents/{name}/{row.pk}/delete/").status_code == 403


def test_the_dataset_shows_its_cases(admin_client, rows):
    dataset = rows[0]
    page = admin_client.get(f"/admin/agents/dataset/{dataset.pk}/change/").content.decode()
    assert "Queues" in page
