"""Job leases (lease_owner, lease_expires_at) and the Schedule of the sweep that queues again
every unfinished job whose lease lapsed (curation/engine/recovery.py)."""

from django.db import migrations, models
from django.utils import timezone

# As in curation.engine.recovery (a migration keeps its own copy of what it writes).
SWEEP_NAME = "curation: wake jobs whose lease lapsed"
SWEEP_FUNC = "curation.engine.tasks.sweep_jobs"
SWEEP_KWARGS = "{'q_options': {'save': False}}"


def add_sweep(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    if not Schedule.objects.filter(name=SWEEP_NAME).exists():
        Schedule.objects.create(
            name=SWEEP_NAME, func=SWEEP_FUNC, kwargs=SWEEP_KWARGS, schedule_type="I", minutes=1,
            repeats=-1, next_run=timezone.now(),
        )  # fmt: skip


def remove_sweep(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SWEEP_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("curation", "0007_tag_consolidation"),
        ("django_q", "0014_schedule_cluster"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="lease_owner",
            field=models.CharField(blank=True, default="", max_length=100),
        ),
        migrations.AddField(
            model_name="job",
            name="lease_expires_at",
            field=models.DateTimeField(
                blank=True, help_text="The lease lapses then unless its run renews it.", null=True
            ),
        ),
        migrations.RunPython(add_sweep, remove_sweep),
    ]
