"""Operation leases (lease_owner, lease_expires_at, runs) and the Schedule of the sweep that
queues again every unfinished operation whose lease lapsed (curation/operations.py)."""

from django.db import migrations, models
from django.utils import timezone

# As in curation.operations (a migration keeps its own copy of what it writes).
SWEEP_NAME = "curation: wake operations whose lease lapsed"
SWEEP_FUNC = "curation.operations.sweep_operations"
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
        ("curation", "0013_watch"),
        ("django_q", "0014_schedule_cluster"),
    ]

    operations = [
        migrations.AddField(
            model_name="operation",
            name="lease_owner",
            field=models.CharField(blank=True, default="", max_length=100),
        ),
        migrations.AddField(
            model_name="operation",
            name="lease_expires_at",
            field=models.DateTimeField(
                blank=True, help_text="The lease lapses then unless its run renews it.", null=True
            ),
        ),
        migrations.AddField(
            model_name="operation",
            name="runs",
            field=models.PositiveSmallIntegerField(
                default=0, help_text="Runs started; more than one: a worker was lost on the way."
            ),
        ),
        migrations.RunPython(add_sweep, remove_sweep),
    ]
