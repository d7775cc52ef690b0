from django.db import migrations, models

# The sentences that told waiting jobs apart before the code did (as they were written then).
SENTENCES = {
    "agent": "No agent is enabled: waiting until one is.",
    "specialist": (
        "No enabled agent may run some of its subtasks (the orchestrator runs only subtasks of "
        "its own specialties): waiting until one is enabled."
    ),
    "orchestrator": "Waiting for an enabled orchestrator agent to plan this job.",
}


def fill_waiting_for(apps, schema_editor):
    Job = apps.get_model("agents", "Job")
    waiting = Job.objects.filter(status="waiting")
    for code, sentence in SENTENCES.items():
        waiting.filter(status_reason=sentence).update(waiting_for=code)
    waiting.filter(waiting_for="", review_plan=True, planned_at__isnull=False).update(
        waiting_for="review"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0015_event_outbox"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="waiting_for",
            field=models.CharField(
                blank=True,
                choices=[
                    ("agent", "An enabled agent"),
                    ("specialist", "An enabled agent that may run its subtasks"),
                    ("orchestrator", "An enabled orchestrator to plan it"),
                    ("review", "An operator's review of its plan"),
                ],
                max_length=16,
            ),
        ),
        migrations.RunPython(fill_waiting_for, migrations.RunPython.noop),
    ]
