"""Browser, 1366×768: the dashboard's spending over time (per week and per month, inline SVG
bars and their tables) renders inside the page, with no horizontal overflow, and shows a
watched vault's limit and last outcome."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from curation.engine.watch import watch_configure
from curation.models import Item, Job, Watch
from ingest.models import Note
from tests.browser.test_pages_fit import HEIGHT, WIDTH, assert_fits

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def job_at(note_ids, when, *, cost, batched):
    """A finished job of those notes made at `when`; batched items were billed at half price."""
    job = Job.objects.create(model="claude-haiku-4-5", state=Job.State.SUCCEEDED, cost=cost,
                             mode="batch" if batched else "sync")  # fmt: skip
    Job.objects.filter(pk=job.pk).update(created_at=when)
    each = cost / len(note_ids)
    Item.objects.bulk_create([
        Item(job=job, note_id=nid, state=Item.State.SUCCEEDED, cost=each,
             batch_cost=each if batched else Decimal(0), custom_id=f"b{job.pk}-{nid}")
        for nid in note_ids
    ])  # fmt: skip
    return job


def test_spending_chart_fits_1366(open_session, users, sample_vault):
    ids = list(Note.objects.filter(vault=sample_vault).values_list("id", flat=True)[:6])
    now = timezone.now()
    # Spending in most of the last weeks and months, one large month to scale the others.
    for k in range(8):
        job_at(ids[:3], now - datetime.timedelta(days=7 * k), cost=Decimal("0.0125") * (k + 1),
               batched=k % 2 == 0)  # fmt: skip
    job_at(ids, now - datetime.timedelta(days=95), cost=Decimal("2.40"), batched=True)
    job_at(ids[:1], now - datetime.timedelta(days=200), cost=Decimal("0.0031"), batched=False)
    Job.objects.update(vault=sample_vault)
    watch_configure(vault=sample_vault, enabled=True, limit=Decimal(5))
    Watch.objects.update(
        outcome="limit $5.00/month: 40 of 100 notes queued in job 3 (batch, estimated $4.88), "
        "$0.12 left; the rest waits until 2027-01-01", last_curate_at=now)  # fmt: skip

    me = open_session("admin")
    me.page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    me.login("admin")
    page = me.go("/")
    page.wait_for_selector("#dash-spending svg.vc-chart")
    charts = page.locator("#dash-spending svg.vc-chart")
    assert charts.count() == 2
    assert page.locator("#spending-weeks rect.vc-bar-spent").count() == 8
    assert page.locator("#spending-months rect.vc-bar-spent").count() == 12
    # Bars are drawn: the tallest has a real height on screen, inside its chart's box.
    for i in range(2):
        box = charts.nth(i).bounding_box()
        assert box["width"] > 250 and box["height"] > 60, box
        assert box["x"] + box["width"] <= WIDTH
    heights = page.eval_on_selector_all(
        "#spending-months rect.vc-bar-spent", "rs => rs.map(r => r.getBoundingClientRect().height)"
    )
    assert max(heights) > 60 and sum(1 for h in heights if h > 0) >= 4, heights
    month = timezone.localtime(now - datetime.timedelta(days=95))
    row = page.locator("#spending-months tbody tr", has_text=f"{month:%B %Y}")
    cells = row.locator("td").all_inner_texts()
    # 1 job, 6 notes, $2.40 spent; billed at half price, real time would have cost $4.80.
    assert cells[1:] == ["1", "6", "$2.40", "$2.40"], cells
    assert "the rest waits until 2027-01-01" in page.locator("#dash-watches").inner_text()
    page.locator("#dash-spending").scroll_into_view_if_needed()
    assert_fits(me, "dashboard spending", sidebar=False)
