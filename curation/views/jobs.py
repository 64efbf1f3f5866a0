"""The live job page: a progress bar fed by a small JSON endpoint, plus cancel and retry."""

from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from curation.engine import jobs
from curation.models import Item, Job
from curation.roles import can_change_jobs


@require_safe
@login_required
@permission_required("curation.view_job", raise_exception=True)
def job_page(request, job_id: int):
    job = get_object_or_404(Job.objects.select_related("vault", "created_by"), id=job_id)
    progress = jobs.job_progress(job_id=job.id)
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
    }
    return TemplateResponse(request, "curation/job.html", context)


@require_safe
@login_required
@permission_required("curation.view_job", raise_exception=True)
def job_progress(request, job_id: int):
    try:
        data = jobs.job_progress(job_id=job_id)
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
        messages.success(request, f"Job {job.id} canceled ({n} items not yet done).")
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
    messages.success(request, f"Job {job.id}: retrying {n} failed items.")
    return HttpResponseRedirect(reverse("curation:job", args=[job.id]))
