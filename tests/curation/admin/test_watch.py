"""Watched vaults in the admin: their own pages and the inline on the vault; saving syncs the
schedule, the record shows the last runs and what the last curation did."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from curation.engine.watch import schedule_name, watch_configure
from curation.models import Job, Watch
from ingest.models import Vault

pytestmark = pytest.mark.django_db


@pytest.fixture
def vault():
    return Vault.objects.create(name="Notes", root="/tmp/notes-h19b")


def test_the_add_page_enables_the_watch_and_makes_its_schedule(admin_client, vault):
    response = admin_client.post(reverse("admin:curation_watch_add"), {
        "vault": vault.pk, "enabled": "on", "every_minutes": "30", "curate_at": "02:00",
        "period": "month", "limit": "5",
    })  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    watch = Watch.objects.get(vault=vault)
    assert watch.enabled and watch.every_minutes == 30 and watch.limit == 5
    assert watch.enabled_at is not None
    assert Schedule.objects.get(name=schedule_name(vault.pk)).minutes == 30


def test_the_vaults_list_and_page_link_to_the_watch(admin_client, vault):
    vaults = reverse("admin:ingest_vault_changelist")
    add = reverse("admin:curation_watch_add") + f"?vault={vault.pk}"
    assert f'href="{add}"' in admin_client.get(vaults).content.decode().replace("&amp;", "&")
    assert 'name="vault"' in admin_client.get(add).content.decode()
    watch = watch_configure(vault=vault, enabled=True, every_minutes=20)
    change = reverse("admin:curation_watch_change", args=[watch.pk])
    for url in (vaults, reverse("admin:ingest_vault_change", args=[vault.pk])):
        html = admin_client.get(url).content.decode()
        assert f'<a href="{change}">Watched (every 20 min, curated at 02:00)</a>' in html


def test_watch_admin_disabling_removes_the_schedule(admin_client, vault):
    watch = watch_configure(vault=vault, enabled=True)
    assert Schedule.objects.filter(name=schedule_name(vault.pk)).exists()
    url = reverse("admin:curation_watch_change", args=[watch.pk])
    response = admin_client.post(url, {"every_minutes": "15", "curate_at": "02:00",
                                       "period": "month", "limit": ""})  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    assert not Watch.objects.get(pk=watch.pk).enabled
    assert not Schedule.objects.filter(name=schedule_name(vault.pk)).exists()


def test_list_and_page_show_the_schedule_last_runs_and_outcome(admin_client, vault):
    job = Job.objects.create(model="m", vault=vault, cost="1.25", state=Job.State.SUCCEEDED)
    watch = watch_configure(vault=vault, enabled=True, limit=5, every_minutes=20,
                            curate_at=datetime.time(3, 15))  # fmt: skip
    outcome = ("limit $5.00/month: 40 of 100 notes queued in job 1 (batch, estimated $3.63), "
               "$0.12 left; the rest waits until 2027-01-01")  # fmt: skip
    Watch.objects.filter(pk=watch.pk).update(
        outcome=outcome, last_job=job, last_curate_at=timezone.now(), last_import_at=timezone.now()
    )
    listing = admin_client.get(reverse("admin:curation_watch_changelist")).content.decode()
    assert "Notes" in listing and "20 min" in listing and "3:15" in listing
    assert "$5.00/month" in listing and "the rest waits until 2027-01-01" in listing
    page = admin_client.get(reverse("admin:curation_watch_change", args=[watch.pk])).content.decode()
    assert reverse("curation:job", args=[job.pk]) in page
    assert "$1.25 of $5.00 this month" in page  # the vault's jobs of this period
