"""Agent versions: AgentVersion, Agent.version, and the version each subtask attempt and
LLM call ran with. Every existing agent gets its version 1 from its current fields."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# agents.versions.VERSIONED_FIELDS as of this migration.
VERSIONED_FIELDS = (
    "model",
    "system_prompt",
    "specialties",
    "tools",
    "needs_approval",
    "temperature",
    "max_tokens",
    "max_tool_steps",
)


def first_versions(apps, schema_editor) -> None:
    db = schema_editor.connection.alias
    Agent = apps.get_model("agents", "Agent")
    AgentVersion = apps.get_model("agents", "AgentVersion")
    AgentVersion.objects.using(db).bulk_create(
        AgentVersion(
            agent=agent,
            number=1,
            config={name: getattr(agent, name) for name in VERSIONED_FIELDS},
        )
        for agent in Agent.objects.using(db).iterator()
    )


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0017_api_token"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="agent",
            name="version",
            field=models.PositiveIntegerField(default=1, editable=False),
        ),
        migrations.AddField(
            model_name="llmcall",
            name="agent_version",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="subtask",
            name="agent_version",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name="AgentVersion",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("number", models.PositiveIntegerField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("note", models.CharField(blank=True, max_length=200)),
                ("config", models.JSONField(default=dict)),
                (
                    "agent",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="versions",
                        to="agents.agent",
                    ),
                ),
                (
                    "author",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["agent", "-number"],
                "constraints": [
                    models.UniqueConstraint(fields=("agent", "number"), name="agent_version_unique")
                ],
            },
        ),
        migrations.RunPython(first_versions, migrations.RunPython.noop),
    ]
