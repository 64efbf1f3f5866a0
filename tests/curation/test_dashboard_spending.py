"""Spending over time on the dashboard: spent and saved by batching per week and per month,
computed from the jobs (in local time), drawn as an inline SVG and tabulated; watched vaults'
limits and last outcome."""

import datetime
import zoneinfo
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from curation.dashboard import CHART_WIDTH, saved_by_batching, spending_over_time, watched_vaults
from curation.engine.watch import watch_configure
from curation.models import Item, Job, Watch
from ingest.models import Note, Vault

pytestmark = pytest.mark.django_db
PARIS = zoneinfo.ZoneInfo("Europe/Paris")


@pytest.fixture
def paris(settings):
    settings.TIME_ZONE = "Europe/Paris"
    timezone.activate(PARIS)
    yield
    timezone.deactivate()


@pytest.fixture
def vault():
    return Vault.objects.create(name="v", root="/tmp/v-h19b")


def job_at(vault, when, *, cost, batch_cost=Decimal(0), notes=1):
    """A finished job made at `when`, its cost spread over `notes` succeeded items."""
    job = Job.objects.create(model="m", vault=vault, state=Job.State.SUCCEEDED, cost=cost,
                             mode="batch" if batch_cost else "sync")  # fmt: skip
    Job.objects.filter(pk=job.pk).update(created_at=when)
    start = Note.objects.count()
    for i in range(notes):
        note = Note.objects.create(vault=vault, path=f"n{start + i}.md")
        Item.objects.create(job=job, note=note, state=Item.State.SUCCEEDED, cost=cost / notes,
                            batch_cost=batch_cost / notes, custom_id=f"j{job.pk}-{i}")  # fmt: skip
    return job


def by_title(chart):
    return {p.title: p for p in chart.periods}


def test_weeks_and_months_from_the_jobs_in_local_time(paris, vault):
    now = datetime.datetime(2026, 12, 17, 15, 0, tzinfo=PARIS)  # a Thursday
    job_at(vault, datetime.datetime(2026, 12, 16, 9, 0, tzinfo=PARIS), cost=Decimal("0.04"),
           batch_cost=Decimal("0.04"), notes=4)  # fmt: skip
    job_at(vault, datetime.datetime(2026, 12, 14, 0, 30, tzinfo=PARIS), cost=Decimal("0.10"))
    # 23:30 UTC on Sunday 30 November is Monday 1 December, 00:30 in Paris.
    job_at(vault, datetime.datetime(2026, 11, 30, 23, 30, tzinfo=datetime.UTC),
           cost=Decimal("0.02"), batch_cost=Decimal("0.02"), notes=2)  # fmt: skip
    job_at(vault, datetime.datetime(2026, 11, 29, 12, 0, tzinfo=PARIS), cost=Decimal("1.50"),
           batch_cost=Decimal("0.99"), notes=3)  # fmt: skip
    job_at(vault, datetime.datetime(2026, 3, 2, 12, 0, tzinfo=PARIS), cost=Decimal("2"))
    job_at(vault, datetime.datetime(2025, 12, 31, 12, 0, tzinfo=PARIS), cost=Decimal("9"))  # too old

    spending = spending_over_time(now=now)
    weeks = by_title(spending.weeks)
    assert list(weeks)[0] == "week of 2026-10-26" and list(weeks)[-1] == "week of 2026-12-14"
    this_week = weeks["week of 2026-12-14"]
    assert (this_week.spent, this_week.jobs, this_week.notes) == (Decimal("0.14"), 2, 5)
    assert this_week.saved == saved_by_batching(Decimal("0.04")) == Decimal("0.04")
    assert weeks["week of 2026-11-30"].spent == Decimal("0.02")
    assert weeks["week of 2026-11-23"].spent == Decimal("1.50")
    assert weeks["week of 2026-11-23"].saved == saved_by_batching(Decimal("0.99"))
    assert weeks["week of 2026-12-07"].spent == 0 and weeks["week of 2026-12-07"].jobs == 0

    months = by_title(spending.months)
    assert list(months)[0] == "January 2026" and list(months)[-1] == "December 2026"
    assert months["December 2026"].spent == Decimal("0.16")
    assert months["December 2026"].saved == saved_by_batching(Decimal("0.06"))
    assert months["November 2026"].spent == Decimal("1.50")
    assert months["March 2026"].spent == Decimal("2")
    assert spending.months.spent == Decimal("3.66")  # the job of December 2025 is left out
    assert spending.months.saved == saved_by_batching(Decimal("0.06")) + saved_by_batching(Decimal("0.99"))


def test_bars_are_scaled_to_the_tallest_and_stay_inside_the_chart(vault):
    now = timezone.now()
    job_at(vault, now, cost=Decimal("2"), batch_cost=Decimal("2"), notes=2)
    job_at(vault, now - datetime.timedelta(days=7), cost=Decimal("0.5"))
    chart = spending_over_time(now=now).weeks
    room = chart.base_y - 16
    assert chart.top == Decimal("2")
    tallest = max(p.spent_h for p in chart.periods)
    assert tallest == pytest.approx(room)
    assert chart.periods[-2].spent_h == pytest.approx(room / 4)
    for p in chart.periods:
        assert 0 <= p.x and p.saved_x + chart.bar_width <= CHART_WIDTH
        assert p.spent_y + p.spent_h == pytest.approx(chart.base_y)


def test_spending_costs_two_queries_whatever_the_jobs(vault):
    now = timezone.now()
    job_at(vault, now, cost=Decimal("1"))
    with CaptureQueriesContext(connection) as few:
        spending_over_time(now=now)
    for k in range(20):
        job_at(vault, now - datetime.timedelta(days=9 * k), cost=Decimal("0.1"), notes=2)
    with CaptureQueriesContext(connection) as many:
        spending_over_time(now=now)
    assert len(few) == len(many) == 2


def test_dashboard_page_shows_the_chart_the_table_and_watched_vaults(client, vault):
    now = timezone.now()
    job_at(vault, now, cost=Decimal("0.0336"), batch_cost=Decimal("0.0336"), notes=3)
    watch_configure(vault=vault, enabled=True, limit=Decimal(5))
    Watch.objects.filter(vault=vault).update(
        outcome="limit $5.00/month: 40 of 100 notes queued in job 7, $0.12 left; the rest waits "
        "until 2027-01-01", last_curate_at=now)  # fmt: skip
    client.force_login(User.objects.create_superuser("boss", password="x"))
    html = client.get(reverse("admin:index")).content.decode()
    assert 'id="dash-spending"' in html and html.count('<svg class="vc-chart"') == 2
    assert html.count('class="vc-bar-spent"') == 8 + 12
    assert "Saved by batching" in html and "$0.0336" in html  # spent, and saved at half price
    assert "Watched vaults" in html and "the rest waits until 2027-01-01" in html
    assert "limit $5.00/month: $0.0336 spent" in html


def test_watched_vaults_sum_their_period_in_one_query_per_kind(vault):
    other = Vault.objects.create(name="w", root="/tmp/w-h19b")
    now = timezone.now()
    job_at(vault, now, cost=Decimal("1.5"))
    job_at(other, now, cost=Decimal("0.25"))
    watch_configure(vault=vault, limit=Decimal(2), period="month")
    watch_configure(vault=other, limit=Decimal(1), period="week")
    with CaptureQueriesContext(connection) as queries:
        rows = {w.name: w for w in watched_vaults(now=now)}
    assert len(queries) == 3
    assert (rows["v"].spent, rows["v"].left) == (Decimal("1.5"), Decimal("0.5"))
    assert (rows["w"].spent, rows["w"].left) == (Decimal("0.25"), Decimal("0.75"))


def test_watched_vaults_show_only_to_the_roles_that_see_them(client, vault):
    from django.contrib.auth.models import Group

    watch_configure(vault=vault, enabled=True)
    Watch.objects.filter(vault=vault).update(outcome="nothing new or changed to curate")
    nobody = User.objects.create_user("nobody", password="x", is_staff=True)
    client.force_login(nobody)
    html = client.get(reverse("admin:index")).content.decode()
    assert 'id="dash-spending"' in html and 'id="dash-watches"' not in html
    for role in ("Viewer", "Curator", "Moderator"):
        user = User.objects.create_user(f"u-{role}", password="x", is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        client.force_login(user)
        html = client.get(reverse("admin:index")).content.decode()
        assert 'id="dash-watches"' in html and "nothing new or changed" in html, role
    curator = User.objects.get(username="u-Curator")
    assert curator.has_perm("curation.change_watch")
    assert not User.objects.get(username="u-Viewer").has_perm("curation.change_watch")
