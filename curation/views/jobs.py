"""The live job page: a progress bar fed by a small JSON endpoint, plus cancel and retry."""

from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Count, Q
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from curation.engine import jobs
from curation.models import Item, Job, Mode, Suggestion, TagConsolidation
from curation.roles import can_change_jobs
from curation.templatetags.vaultcms_money import money


def _shown(data: dict) -> dict:
    """The progress as the page shows it: the mode's label (it changes on "Switch to
    parallel"), costs with "$", and the job's suggestions awaiting review (as the queue counts)."""
    data["mode_label"] = Mode(data["mode"]).label if data.get("mode") else ""
    data["cost_text"] = money(data["cost"])
    for item in data.get("items", []):
        item["cost_text"] = money(item["cost"])
    if data.get("kind") == Job.Kind.CONSOLIDATE:  # its merges, not suggestions, await review
        counts = TagConsolidation.objects.filter(job_id=data["id"]).aggregate(
            merges=Count("id"), pending=Count("id", filter=Q(state=TagConsolidation.State.PENDING))
        )
        data["merges"], data["pending"] = counts["merges"], counts["pending"]
        return data
    data["pending"] = Suggestion.objects.filter(
        job_id=data["id"], state=Suggestion.State.PENDING
    ).count()
    return data


MERGES_SHOWN = 200  # proposed merges listed on a consolidation job's page (most notes first)


def _merges(job: Job) -> list[dict]:
    """A consolidation job's proposed merges as its page lists them: one query, any number."""
    labels = dict(TagConsolidation.State.choices)
    rows = job.consolidations.values("old", "new", "notes", "reason", "state")[:MERGES_SHOWN]
    return [{**row, "state_label": labels.get(row["state"], row["state"])} for row in rows]


@require_safe
@login_required
@permission_required("curation.view_job", raise_exception=True)
def job_page(request, job_id: int):
    job = get_object_or_404(Job.objects.select_related("vault", "created_by"), id=job_id)
    progress = _shown(jobs.job_progress(job_id=job.id))
    context = {
        **admin.site.each_context(request),
        "title": f"Job {job.id}",
        "job": job,
        "progress": progress,
        "states": [
            (value, label, progress["counts"][value]) for value, label in Item.State.choices
        ],
        "can_change": can_change_jobs(request.user),
        "items_url": reverse("admin:curation_item_changelist") + f"?job__id__exact={job.id}",
        "queue_url": reverse("admin:curation_suggestion_changelist") + f"?job__id__exact={job.id}",
    }
    if job.is_consolidation:
        context["merges"] = _merges(job) if progress["final"] else []
        context["merges_shown"] = MERGES_SHOWN
        context["queue_url"] = (
            reverse("admin:curation_tagconsolidation_changelist") + f"?job__id__exact={job.id}"
        )
    return TemplateResponse(request, "curation/job.html", context)


@require_safe
@login_required
@permission_required("curation.view_job", raise_exception=True)
def job_progress(request, job_id: int):
    try:
        data = _shown(jobs.job_progress(job_id=job_id))
    except Job.DoesNotExist:
        raise Http404("no such job") from None
    response = JsonResponse(data)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@login_required
@permission_required("curation.change_job", raise_exception=True)
def job_cancel(request, job_id: int):
    job = get_object_or_404(Job, id=job_id)
    if job.is_final:
        messages.info(request, f"Job {job.id} had already ended ({job.get_state_display()}): "
                               "nothing to cancel.")
        return HttpResponseRedirect(reverse("curation:job", args=[job.id]))
    n = jobs.job_cancel(job_id=job.id)
    job.refresh_from_db()
    if job.state != Job.State.CANCELED:  # it ended between the page and the click
        messages.info(request, f"Job {job.id} had already ended ({job.get_state_display()}): "
                               "nothing to cancel.")
    else:
        messages.success(
            request, f"Job {job.id} canceled ({n} item{'' if n == 1 else 's'} not yet done)."
        )
    return HttpResponseRedirect(reverse("curation:job", args=[job.id]))


@require_POST
@login_required
@permission_required("curation.change_job", raise_exception=True)
def job_retry(request, job_id: int):
    job = get_object_or_404(Job, id=job_id)
    if job.state == Job.State.CANCELED:
        messages.info(request, f"Job {job.id} was canceled: its failed items stay as they are.")
        return HttpResponseRedirect(reverse("curation:job", args=[job.id]))
    n = jobs.job_retry_failed(job_id=job.id)
    messages.success(request, f"Job {job.id}: retrying {n} failed item{'' if n == 1 else 's'}.")
    return HttpResponseRedirect(reverse("curation:job", args=[job.id]))
