"""ApiToken moves from the api app to the agents app (agents/credentials.py), where the API
and the event stream both read it. Its table stays api_apitoken: only Django's state moves
(api's 0002 removes it there), and its content type, so that permissions granted on tokens
and the admin's history of them follow."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def _relabel(apps, schema_editor, old: str, new: str) -> None:
    types = apps.get_model("contenttypes", "ContentType").objects.using(
        schema_editor.connection.alias
    )
    if not types.filter(app_label=new, model="apitoken").exists():
        types.filter(app_label=old, model="apitoken").update(app_label=new)


def to_agents(apps, schema_editor) -> None:
    _relabel(apps, schema_editor, "api", "agents")


def to_api(apps, schema_editor) -> None:
    _relabel(apps, schema_editor, "agents", "api")


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0016_job_waiting_for"),
        ("api", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ApiToken",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "name",
                            models.CharField(
                                help_text="What the token is for, e.g. “CI”.", max_length=100
                            ),
                        ),
                        ("prefix", models.CharField(editable=False, max_length=12, unique=True)),
                        ("secret_hash", models.CharField(editable=False, max_length=64)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "last_used_at",
                            models.DateTimeField(blank=True, editable=False, null=True),
                        ),
                        ("revoked_at", models.DateTimeField(blank=True, editable=False, null=True)),
                        (
                            "owner",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="api_tokens",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "API token",
                        "db_table": "api_apitoken",
                        "ordering": ["-created_at", "-id"],
                    },
                ),
            ],
        ),
        migrations.RunPython(to_agents, to_api, elidable=False),
    ]
