# An endpoint may subscribe to agent.quality_dropped (choices only: no change to the table).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0002_delivery_messages_lost"),
    ]

    operations = [
        migrations.AlterField(
            model_name="delivery",
            name="event",
            field=models.CharField(
                choices=[
                    ("job.completed", "Job Completed"),
                    ("job.failed", "Job Failed"),
                    ("job.cancelled", "Job Cancelled"),
                    ("job.awaiting_review", "Job Awaiting Review"),
                    ("subtask.failed", "Subtask Failed"),
                    ("budget.exceeded", "Budget Exceeded"),
                    ("agent.quality_dropped", "Agent Quality Dropped"),
                ],
                max_length=32,
            ),
        ),
    ]
