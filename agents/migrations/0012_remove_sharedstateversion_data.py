from django.db import migrations

# Apart from 0011: on PostgreSQL a table cannot be altered in the transaction that updated
# its rows while deferred foreign-key checks are pending.


class Migration(migrations.Migration):

    dependencies = [
        ("agents", "0011_state_deltas"),
    ]

    operations = [
        migrations.RemoveField(
            model_name="sharedstateversion",
            name="data",
        ),
    ]
