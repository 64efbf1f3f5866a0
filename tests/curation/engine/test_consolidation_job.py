"""Tag consolidation as a job: the same router, runners, budget, cost, retry and cancel as a
curation job, against the emulator; its items carry parts of the tag list, not notes."""

import pytest
from django.db.models import Count

from curation.api.prompt import TagMerge
from curation.engine import jobs
from curation.engine.consolidation import (
    NothingToConsolidate,
    consolidations_store,
    tag_parts,
    vault_tag_list,
)
from curation.engine.requests import RequestBuilder
from curation.models import Batch, Item, Job, Suggestion, TagConsolidation
from ingest.importer import vault_import

pytestmark = pytest.mark.django_db

FILES = {
    "a.md": "---\ntags: [Python, agents]\n---\nA body.\n",
    "b.md": "---\ntags:\n  - python\n  - js\n---\nB body\n",
    "c.md": "---\ntags: [python, agent, coding/languages/javascript]\n---\nC.\n",
    "d.md": "---\ntags: [agents, cooking]\n---\nD.\n",
}
MERGES = {("Python", "python"): 1, ("agent", "agents"): 1, ("js", "coding/languages/javascript"): 1}

# Twelve tags; in parts of four (alphabetical, case folded) the spellings of one tag share a part.
MANY = {
    "a.md": "---\ntags: [agents, python, recipes, cooking]\n---\nA.\n",
    "b.md": "---\ntags: [agents, python, recipes, travel]\n---\nB.\n",
    "c.md": "---\ntags: [agent, Python, recipe, baking, js]\n---\nC.\n",
    "d.md": "---\ntags: [coding/languages/javascript, zebra]\n---\nD.\n",
}


@pytest.fixture
def vault(emulator, make_vault, fast_polls):
    vault, _ = vault_import(root=make_vault(FILES), name="v")
    return vault


def run(job: Job) -> Job:
    assert jobs.job_run(job_id=job.id, sleep=lambda s: None) is True
    job.refresh_from_db()
    return job


def merges_of(job: Job) -> dict:
    return {(m.old, m.new): m.notes for m in TagConsolidation.objects.filter(job=job)}


def test_one_part_is_one_real_time_call_through_the_engine(vault, emulator):
    job = jobs.consolidation_create(vault_id=vault.pk)
    assert job.kind == Job.Kind.CONSOLIDATE and job.mode == "sync" and job.cost_estimate > 0
    item = job.items.get()
    assert item.note is None and len(item.tag_list) == 7
    assert item.custom_id.startswith(jobs.install_key() + "_") and "tags_1_of_1" in item.custom_id
    run(job)
    assert job.state == Job.State.SUCCEEDED
    assert merges_of(job) == MERGES
    item.refresh_from_db()
    assert item.state == Item.State.SUCCEEDED and item.attempts == 1 and item.cost > 0
    assert job.cost == item.cost  # cost accounted as for any job
    assert emulator.stats()["messages"] == 1 and emulator.stats()["batches"] == 0
    assert not Suggestion.objects.exists()


def test_batch_mode_maps_the_result_by_custom_id(vault, emulator):
    job = run(jobs.consolidation_create(vault_id=vault.pk, mode="batch"))
    assert job.state == Job.State.SUCCEEDED and job.mode == "batch"
    batch = Batch.objects.get(job=job)
    assert batch.state == Batch.State.APPLIED and batch.request_count == 1
    assert emulator.stats()["batches"] == 1 and emulator.stats()["messages"] == 0
    assert merges_of(job) == MERGES
    item = job.items.get()
    assert item.batch_cost == item.cost > 0  # billed at the batch price
    assert job.cost < jobs.consolidation_preview(vault_id=vault.pk)["costs"][False]


@pytest.mark.parametrize("mode", ["auto", "parallel"])
def test_a_long_tag_list_goes_in_parts(emulator, make_vault, fast_polls, settings, mode):
    settings.CURATION_CONSOLIDATION_TAGS = 4
    vault, _ = vault_import(root=make_vault(MANY), name="many")
    tags = vault_tag_list(vault_id=vault.pk)
    assert len(tags) == 12
    job = jobs.consolidation_create(vault_id=vault.pk, mode=mode)
    items = list(job.items.order_by("id"))
    assert len(items) == 3 and all(len(i.tag_list) == 4 for i in items)
    assert job.mode == ("batch" if mode == "auto" else "parallel")  # the router, by parts
    # Every tag is sent exactly once, and spellings of one tag share a part.
    sent = [entry[0] for i in items for entry in i.tag_list]
    assert sorted(sent) == sorted(t for t, _, _ in tags)
    part_of = {entry[0]: i.id for i in items for entry in i.tag_list}
    assert part_of["agent"] == part_of["agents"] and part_of["Python"] == part_of["python"]
    # A part's request names the most used tags of the other parts, as targets only.
    params = RequestBuilder(job).params(items[2])
    text = params["messages"][0]["content"]
    assert "Other tags of this vault" in text and "agents" in text.split("Other tags")[1]
    assert "- agents (" not in text
    run(job)
    assert job.state == Job.State.SUCCEEDED
    merges = merges_of(job)
    assert {("agent", "agents"), ("Python", "python"), ("recipe", "recipes")} <= set(merges)
    olds = list(TagConsolidation.objects.filter(job=job).values_list("old", flat=True))
    assert len(olds) == len(set(olds))
    assert job.cost == sum(i.cost for i in job.items.all()) > 0
    if mode == "auto":
        assert emulator.stats()["batch_requests"] == 3


def test_parts_are_cut_alphabetically_only_when_the_list_is_long():
    tags = [("b", 3, []), ("A", 2, []), ("a", 1, []), ("c", 1, [])]
    assert tag_parts(tags, size=4) == [tags]
    assert tag_parts(tags, size=2) == [[("A", 2, []), ("a", 1, [])], [("b", 3, []), ("c", 1, [])]]


def test_merges_stay_one_step_across_parts(vault):
    """Parts answer separately: a later part cannot chain onto, or repeat, an earlier one."""
    job = Job.objects.create(kind=Job.Kind.CONSOLIDATE, vault=vault, model="m")
    assert consolidations_store(job=job, merges=[TagMerge("agent", "agents")]) == 1
    later = [
        TagMerge("agent", "bots"),  # moved already
        TagMerge("agents", "ai/agents"),  # a target already: agent -> agents -> ai/agents
        TagMerge("robots", "agent"),  # onto a tag that is moved
        TagMerge("Python", "python"),
    ]
    assert consolidations_store(job=job, merges=later) == 1
    assert merges_of(job) == {("agent", "agents"): 1, ("Python", "python"): 1}


def test_over_the_budget_is_refused_before_anything_is_written(vault, emulator):
    with pytest.raises(jobs.OverBudget, match=r"7 tags in 1 request .*over the maximum of \$0.000001"):
        jobs.consolidation_create(vault_id=vault.pk, max_cost="0.000001")
    assert not Job.objects.exists() and not Item.objects.exists()
    assert emulator.stats()["messages"] == 0


def test_the_budget_stops_unsent_parts(emulator, make_vault, fast_polls, settings):
    """A running job reaching its maximum cost stops sending, like a curation job."""
    settings.CURATION_CONSOLIDATION_TAGS = 4
    vault, _ = vault_import(root=make_vault(MANY), name="many")
    job = jobs.consolidation_create(vault_id=vault.pk, mode="sync")
    # Room for about one part: the others end canceled "budget reached", never sent.
    Job.objects.filter(id=job.id).update(max_cost=job.cost_estimate / 3)
    run(job)
    counts = dict(job.items.values_list("state").annotate(n=Count("id")))
    assert counts.get(Item.State.CANCELED, 0) >= 1 and counts.get(Item.State.SUCCEEDED, 0) >= 1
    assert "budget reached" in job.error
    assert emulator.stats()["messages"] == counts[Item.State.SUCCEEDED]


def test_a_failed_part_is_retried(vault, emulator, settings):
    settings.CURATION_MAX_ATTEMPTS = 1
    emulator.configure(fault_malformed=1.0, fault_attempts=1)  # the first answer is unusable
    job = run(jobs.consolidation_create(vault_id=vault.pk))
    item = job.items.get()
    assert job.state == Job.State.FAILED and item.state == Item.State.FAILED
    assert "invalid answer" in item.error and not TagConsolidation.objects.exists()
    assert jobs.job_retry_failed(job_id=job.id) == 1
    job = run(job)
    assert job.state == Job.State.SUCCEEDED and merges_of(job) == MERGES
    item.refresh_from_db()
    assert item.attempts == 1 and item.cost > 0  # attempts start again; both answers billed


def test_an_unusable_answer_is_tried_again_within_the_attempts(vault, emulator):
    emulator.configure(fault_malformed=1.0, fault_attempts=1)
    job = run(jobs.consolidation_create(vault_id=vault.pk))
    assert job.state == Job.State.SUCCEEDED and job.items.get().attempts == 2
    assert merges_of(job) == MERGES


def test_cancel_before_it_runs(vault, emulator):
    job = jobs.consolidation_create(vault_id=vault.pk)
    assert jobs.job_cancel(job_id=job.id) == 1
    run(job)
    assert job.state == Job.State.CANCELED and emulator.stats()["messages"] == 0
    assert not TagConsolidation.objects.exists()


def test_fewer_than_two_tags_is_refused(emulator, make_vault):
    vault, _ = vault_import(root=make_vault({"a.md": "---\ntags: [one]\n---\nA.\n"}), name="e")
    with pytest.raises(NothingToConsolidate, match="fewer than two tags"):
        jobs.consolidation_create(vault_id=vault.pk)
    assert not Job.objects.exists()


def test_curation_jobs_are_unaffected(vault, emulator):
    consolidation = run(jobs.consolidation_create(vault_id=vault.pk, mode="batch"))
    curate = jobs.job_create(notes=vault.notes.all(), fields=["tags", "description"])
    assert curate.kind == Job.Kind.CURATE and curate.mode == "batch"
    run(curate)
    assert curate.state == Job.State.SUCCEEDED
    assert Suggestion.objects.filter(job=curate).count() == 2 * 4
    assert not Suggestion.objects.filter(job=consolidation).exists()
    assert not TagConsolidation.objects.filter(job=curate).exists()
    assert all(i.note_id for i in curate.items.all())
    assert merges_of(consolidation) == MERGES  # untouched by the curation job
