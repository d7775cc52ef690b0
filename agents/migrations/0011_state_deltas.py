import json

from django.db import migrations, models

from agents.state import SNAPSHOT_AFTER, merge


def to_deltas(apps, schema_editor):
    """Keep a version's whole state only where a rebuild needs it: where the changes since
    the last snapshot outweigh the state (agents.state.takes_snapshot), or where merging the
    version's changes does not give the state it recorded (rows not written by state.update).
    `data` goes in the next migration."""
    SharedState = apps.get_model("agents", "SharedState")
    SharedStateVersion = apps.get_model("agents", "SharedStateVersion")
    for state_id in SharedState.objects.order_by("pk").values_list("pk", flat=True).iterator():
        rows = SharedStateVersion.objects.filter(state_id=state_id).order_by("version")
        before, chain, kept = {}, 0, []
        for pk, data, changes in rows.values_list("pk", "data", "changes").iterator():
            chain += len(json.dumps(changes))
            rebuilt = merge(before, changes) if isinstance(changes, dict) else None
            if rebuilt != data or chain > SNAPSHOT_AFTER * len(json.dumps(data)):
                kept.append(SharedStateVersion(pk=pk, snapshot=data))
                chain = 0
            before = data
        SharedStateVersion.objects.bulk_update(kept, ["snapshot"], batch_size=500)
        SharedState.objects.filter(pk=state_id).update(chain_bytes=chain)


def to_whole_states(apps, schema_editor):
    SharedStateVersion = apps.get_model("agents", "SharedStateVersion")
    data, state_id, filled = {}, None, []
    rows = SharedStateVersion.objects.order_by("state_id", "version")
    for pk, state, changes, snapshot in rows.values_list(
        "pk", "state_id", "changes", "snapshot"
    ).iterator():
        if state != state_id:
            data, state_id = {}, state
        data = snapshot if snapshot is not None else merge(data, changes)
        filled.append(SharedStateVersion(pk=pk, data=data))
        if len(filled) == 500:
            SharedStateVersion.objects.bulk_update(filled, ["data"])
            filled = []
    SharedStateVersion.objects.bulk_update(filled, ["data"])


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0010_agent_bounds"),
    ]

    operations = [
        migrations.AddField(
            model_name="sharedstate",
            name="chain_bytes",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="sharedstateversion",
            name="snapshot",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="sharedstateversion",
            index=models.Index(
                condition=models.Q(("snapshot__isnull", False)),
                fields=["state", "version"],
                name="state_version_snapshot",
            ),
        ),
        migrations.RunPython(to_deltas, to_whole_states),
    ]
