"""API tokens moved from the api app to agents (agents/credentials.py) with their table: a
database migrated before the move keeps its tokens, and permissions granted on them."""

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

from agents.credentials import digest
from agents.models import ApiToken

from .cast import person

BEFORE = [("agents", "0016_job_waiting_for"), ("api", "0001_initial")]
SECRET = "baton_0123456789ab_an-old-secret"


@pytest.mark.django_db(transaction=True)
def test_a_token_issued_before_the_move_still_authenticates():
    owner = person("eve")  # in no group: the permission is her own
    view = Permission.objects.get(content_type__app_label="agents", codename="view_apitoken")
    owner.user_permissions.add(view)
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    old.get_model("api", "ApiToken").objects.create(
        owner_id=owner.pk, name="old", prefix="0123456789ab", secret_hash=digest(SECRET)
    )
    assert Permission.objects.get(pk=view.pk).content_type.app_label == "api"

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    token = ApiToken.objects.get()
    assert ApiToken.objects.authenticate(SECRET) == token and token.name == "old"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {SECRET}")
    me = client.get("/api/v1/me").json()
    assert me["username"] == "eve" and me["token"] == "old"
    assert "agents.view_apitoken" in me["permissions"]  # the same permission row, relabelled
    assert Permission.objects.get(pk=view.pk).content_type.app_label == "agents"
