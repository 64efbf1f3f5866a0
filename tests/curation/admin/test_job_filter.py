"""The job filter of the items and the review queue: the 10 latest jobs and a job-number box,
whatever the number of jobs (Django's own filter would list every job)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from curation.admin.jobs import JobFilter
from curation.models import Item, Job, Suggestion

pytestmark = pytest.mark.django_db
QUEUE = reverse("admin:curation_suggestion_changelist")
ITEMS = reverse("admin:curation_item_changelist")


@pytest.fixture
def history(make_notes):
    """Jobs 1..n, the first with one item and one pending suggestion per note."""

    def build(n: int) -> list[Job]:
        notes = make_notes(3)
        jobs = Job.objects.bulk_create(
            [Job(fields=["tags"], model="m", state=Job.State.SUCCEEDED) for _ in range(n)]
        )
        for i, note in enumerate(notes):
            item = Item.objects.create(job=jobs[0], note=note, custom_id=f"f-{i}")
            Suggestion.objects.create(item=item, note=note, job=jobs[0], field="tags",
                                      value=["x"], model="m")  # fmt: skip
        return jobs

    return build


def page(client, url):
    client.get(url)  # warm
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return response.content.decode(), len(ctx.captured_queries)


@pytest.mark.parametrize("url", [QUEUE, ITEMS])
def test_the_sidebar_lists_the_latest_jobs_only(admin_client, history, url):
    jobs = history(30)
    html, _ = page(admin_client, url)
    latest = [j.id for j in jobs][-JobFilter.LATEST:]
    for job_id in latest:
        assert f"job__id__exact={job_id}" in html
    assert f"job__id__exact={jobs[0].id}\"" not in html  # older: by number only
    assert 'name="job__id__exact"' in html and 'type="number"' in html


@pytest.mark.parametrize("url", [QUEUE, ITEMS])
def test_an_older_job_by_its_number(admin_client, history, url):
    jobs = history(30)
    html, _ = page(admin_client, f"{url}?job__id__exact={jobs[0].id}")
    assert html.count("f-0") + html.count("notes/Note 0000.md") >= 1  # its rows are shown
    assert f"#{jobs[0].id}</a>" in html  # and it is named as the chosen job
    other, _ = page(admin_client, f"{url}?job__id__exact={jobs[1].id}")
    assert "notes/Note 0000.md" not in other and "f-0" not in other  # job 2 has none
    junk, _ = page(admin_client, f"{url}?job__id__exact=abc")
    assert "notes/Note 0000.md" not in junk


def test_the_box_keeps_the_other_filters(admin_client, history):
    jobs = history(3)
    html, _ = page(admin_client, f"{QUEUE}?field__exact=tags&job__id__exact={jobs[0].id}")
    box = html.split('class="vc-job-filter"', 1)[1].split("</form>", 1)[0]
    assert '<input type="hidden" name="field__exact" value="tags">' in box
    assert '<input type="hidden" name="job__id__exact"' not in box
    assert f'name="job__id__exact" min="1" inputmode="numeric" value="{jobs[0].id}"' in box


@pytest.mark.parametrize("url", [QUEUE, ITEMS])
def test_query_count_does_not_grow_with_the_jobs(admin_client, history, url):
    history(3)
    _, few = page(admin_client, url)
    Job.objects.bulk_create(
        [Job(fields=["tags"], model="m", state=Job.State.SUCCEEDED) for _ in range(2000)]
    )
    html, many = page(admin_client, url)
    assert many == few <= 10
    assert html.count("job__id__exact=") <= JobFilter.LATEST + 2  # the links, "All", the box
