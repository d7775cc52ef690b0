"""A deep value in the shared state: refused when written, and one stored before the bound
(hundreds of levels) still leaves its job's page and live fragments readable."""

import json

import pytest
from django.db import connection

from agents import state, tools
from agents.models import Job, SharedState, SharedStateVersion
from dashboard.live import render_job

pytestmark = pytest.mark.django_db

STORED_DEPTH = 1000


def nested(levels: int) -> str:
    """JSON text of a list nested `levels` deep, holding a marker string."""
    return "[" * levels + '"bottom"' + "]" * levels


def store_raw(job: Job, text: str) -> None:
    """The state and its one version as old data holds them, in SQL: Django's encoder (and
    Python's parser) recurse and cannot write or read a value this deep."""
    as_json = "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"
    shared = SharedState.objects.create(job=job, version=1)
    version = SharedStateVersion.objects.create(state=shared, version=1, author="old/agent")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {SharedState._meta.db_table} SET data = {as_json} WHERE id = %s",
            [text, shared.pk],
        )
        cursor.execute(
            f"UPDATE {SharedStateVersion._meta.db_table} SET changes = {as_json}, "
            f"snapshot = {as_json} WHERE id = %s",
            [text, text, version.pk],
        )


def test_a_state_stored_1000_deep_leaves_the_job_page_and_its_fragments_readable(
    admin_client,
):
    job = Job.objects.create(title="Deep", description="A job an old model wrote deep into.")
    store_raw(job, json.dumps({"notes": "kept"})[:-1] + f', "deep": {nested(STORED_DEPTH)}}}')

    page = admin_client.get(f"/jobs/{job.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "kept" in html
    assert "[[[[[[" in html, "the deep value shows as its JSON text"
    assert "bottom" not in html, "and is cut before its end"
    assert "v1 by <strong>old/agent</strong>" in html

    fragment = render_job(job.pk, moved=True, changed=set(), state=True)
    assert 'id="state"' in fragment and "kept" in fragment


def test_a_tree_deeper_than_it_draws_shows_the_rest_as_json_text(admin_client):
    job = Job.objects.create(title="Twenty", description="Twenty levels, within the bound.")
    state.write(job.pk, {"plan": json.loads(nested(20))}, author="a/b")
    html = admin_client.get(f"/jobs/{job.pk}/").content.decode()
    # STATE_TREE_DEPTH (8) levels drawn: the root's keys, then seven lists; 13 as text.
    assert html.count('<ol class="tree"') == 7
    assert "[" * 13 + "&quot;bottom&quot;" + "]" * 13 in html


def test_write_state_refuses_a_value_40_deep_with_the_reason():
    job = Job.objects.create(title="Refused", description="A model writes too deep.")
    ctx = tools.Context(job_id=job.pk, author="researcher/research", grants=("write_state",))
    arguments = json.dumps({"key": "deep", "value": json.loads(nested(40))})

    outcome = tools.run("write_state", arguments, ctx)

    assert outcome.result == ""
    assert "nested 40 deep; the shared state takes at most 32 levels" in outcome.error
    assert not SharedStateVersion.objects.filter(state__job=job).exists()


def test_a_value_32_deep_is_written_and_one_deeper_is_refused():
    job = Job.objects.create(title="Bound", description="At the bound.")
    assert state.write(job.pk, {"ok": json.loads(nested(32))}, author="a/b") == 1
    with pytest.raises(state.StateTooDeep, match="'no' is nested 33 deep"):
        state.write(job.pk, {"no": json.loads(nested(33))}, author="a/b")
    assert SharedState.objects.get(job=job).data["ok"] == json.loads(nested(32))
