"""ApiToken is the agents app's now (agents 0017): Django's state forgets it here, the table
(api_apitoken) stays as it is, rows and all."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0001_initial"),
        ("agents", "0017_api_token"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="ApiToken")],
        ),
    ]
