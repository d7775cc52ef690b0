import pytest

from .cast import person

pytestmark = pytest.mark.django_db


def test_a_missing_job_says_what_to_do(client, viewer):
    response = client.get("/jobs/999999/")
    assert response.status_code == 404
    assert "Back to the board" in response.content.decode()


def test_a_forbidden_action_names_the_group_to_ask_for(client):
    client.force_login(person("eve"))
    response = client.post("/jobs/1/cancel/")
    assert response.status_code == 403
    assert "Operators" in response.content.decode()
