import django.core.validators
from django.db import migrations, models

import agents.models
from agents.planning import normalise_specialties


def normalise(apps, schema_editor):
    """Name existing specialties as subtask types are, so allocation can match them."""
    Agent = apps.get_model("agents", "Agent")
    for agent in Agent.objects.only("specialties"):
        names = agent.specialties
        if isinstance(names, list) and all(isinstance(name, str) for name in names):
            normalised = normalise_specialties(names)
            if normalised and normalised != names:
                Agent.objects.filter(pk=agent.pk).update(specialties=normalised)


class Migration(migrations.Migration):

    dependencies = [
        ("agents", "0009_leases"),
    ]

    operations = [
        migrations.AlterField(
            model_name="agent",
            name="specialties",
            field=models.JSONField(
                default=list,
                help_text="Task types this agent handles (at most 12).",
                validators=[agents.models.validate_specialties],
            ),
        ),
        migrations.AlterField(
            model_name="agent",
            name="system_prompt",
            field=models.TextField(
                blank=True,
                max_length=4000,
                validators=[django.core.validators.MaxLengthValidator(4000)],
            ),
        ),
        migrations.RunPython(normalise, migrations.RunPython.noop),
    ]
