"""Admin for jobs, their batches and items: counts, live progress, retry, cancel, hedge."""

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from curation.engine import items, jobs, parallel
from curation.models import Batch, Item, Job
from curation.roles import can_change_jobs
from curation.templatetags.vaultcms_money import money
from vaultcms.admin import ReadOnlyAdminMixin


def _n(count: int, word: str) -> str:
    """"1 item", "2 items": a count with its noun."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def items_url(job_id: int, state: str | None = None) -> str:
    url = reverse("admin:curation_item_changelist") + f"?job__id__exact={job_id}"
    return url + (f"&state__exact={state}" if state else "")


def counts_html(job_id: int, counts: dict[str, int]):
    rows = [
        (items_url(job_id, state), label, counts[state])
        for state, label in Item.State.choices
        if counts.get(state)
    ]
    return format_html_join(", ", '<a href="{}">{} {}</a>', rows) if rows else "-"


class JobFilter(admin.SimpleListFilter):
    """By job: the LATEST latest jobs in the sidebar, and a box for any job's number.

    Django's own filter on a foreign key lists every job: with thousands of jobs the sidebar,
    and the page, grow with the job table. This one reads LATEST rows, whatever the history.
    """

    title = "job"
    parameter_name = "job__id__exact"  # the spelling the job pages' links use
    template = "admin/curation/job_filter.html"
    LATEST = 10

    def lookups(self, request, model_admin):
        rows = Job.objects.order_by("-id").values_list("id", "mode", "created_at")[: self.LATEST]
        choices = [
            (str(pk), f"#{pk} {mode} · {timezone.localtime(created).strftime('%m-%d %H:%M')}")
            for pk, mode, created in rows
        ]  # fmt: skip
        value = self.value()
        if value and value.isdigit() and value not in {pk for pk, _ in choices}:
            choices.append((value, f"#{value}"))  # an older job, typed in the box
        return choices

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(job_id=int(value))

    def choices(self, changelist):
        # What the job-number box keeps of the current page's other filters and search.
        self.other_params = [
            (name, value) for name, value in changelist.params.items()
            if name != self.parameter_name
        ]  # fmt: skip
        yield from super().choices(changelist)


class JobChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        # One aggregate query for the whole page, not one per row.
        counts = items.item_counts(job_ids=[job.id for job in self.result_list])
        for job in self.result_list:
            job.state_counts = counts.get(job.id, {})


class BatchInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Batch
    extra = 0
    can_delete = False
    show_change_link = False
    fields = [
        "provider_id", "state", "request_count", "request_counts", "submitted_at", "ended_at",
        "error",
    ]  # fmt: skip
    readonly_fields = fields


@admin.action(description="Retry failed items", permissions=["change"])
def retry_failed_items(modeladmin, request, queryset):
    total = 0
    for job_id in queryset.values_list("id", flat=True):
        total += jobs.job_retry_failed(job_id=job_id)
    modeladmin.message_user(request, f"Retrying {_n(total, 'failed item')}.", messages.SUCCESS)


@admin.action(description="Cancel", permissions=["change"])
def cancel_jobs(modeladmin, request, queryset):
    running = queryset.filter(state__in=[Job.State.PENDING, Job.State.RUNNING])
    canceled = list(running.values_list("id", flat=True))
    items = sum(jobs.job_cancel(job_id=job_id) for job_id in canceled)
    modeladmin.message_user(
        request, f"Canceled {_n(len(canceled), 'job')} ({_n(items, 'item')} not yet done).",
        messages.SUCCESS,
    )


@admin.action(description="Switch to parallel (batch jobs still running)", permissions=["change"])
def switch_to_parallel(modeladmin, request, queryset):
    """Hedge: the unfinished items of late batch jobs go out as parallel real-time calls.

    The job's worker carries on in parallel mode at its next pass (within a poll interval).
    """
    switched = items = 0
    for job_id in queryset.values_list("id", flat=True):
        n = parallel.job_hedge(job_id=job_id, reason="switched to parallel from the admin")
        if n is not None:
            switched += 1
            items += n
    level = messages.SUCCESS if switched else messages.WARNING
    modeladmin.message_user(
        request, f"Switched {_n(switched, 'job')} to parallel ({_n(items, 'unfinished item')}); "
        "only batch jobs still running can be switched.", level,
    )  # fmt: skip


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["__str__", "state", "mode", "item_counts", "costs", "created", "progress_link"]
    list_filter = ["kind", "state", "mode", "vault"]
    list_select_related = ["vault", "created_by"]
    search_fields = ["=id", "selection"]
    date_hierarchy = "created_at"
    inlines = [BatchInline]
    actions = [retry_failed_items, cancel_jobs, switch_to_parallel]
    readonly_fields = [
        "progress_link", "kind", "state", "requested_mode", "mode", "urgent", "fields", "model",
        "vault", "selection", "created_by", "created_at", "started_at", "finished_at",
        "cost_estimate", "max_cost", "cost", "item_counts", "error", "request_id",
    ]  # fmt: skip
    fields = readonly_fields

    def get_changelist(self, request, **kwargs):
        return JobChangeList

    def has_add_permission(self, request):
        # Jobs are made by the "Curate selected notes" and "Propose tag consolidation" actions,
        # `curate` and `consolidate_tags`.
        return False

    @admin.display(description="Items")
    def item_counts(self, job):
        counts = getattr(job, "state_counts", None)
        if counts is None:  # the change page: one job, one query
            counts = items.item_counts(job_ids=[job.id]).get(job.id, {})
        return counts_html(job.id, counts)

    @admin.display(description="Cost", ordering="cost")
    def costs(self, job):
        return format_html(
            '{}<div class="vc-small vc-muted">estimated {}</div>',
            money(job.cost), money(job.cost_estimate),
        )  # fmt: skip

    @admin.display(description="Created", ordering="created_at")
    def created(self, job):
        who = job.created_by.get_username() if job.created_by else "command"
        when = timezone.localtime(job.created_at).strftime("%Y-%m-%d %H:%M %Z")
        return format_html('{}<div class="vc-small vc-muted">by {}</div>', when, who)

    @admin.display(description="Progress")
    def progress_link(self, job):
        return format_html('<a href="{}">live progress</a>', reverse("curation:job", args=[job.id]))


@admin.action(description="Cancel selected items", permissions=["cancel"])
def cancel_selected_items(modeladmin, request, queryset):
    """Cancel single items while their job runs; an answer arriving later is discarded."""
    n = items.items_cancel(item_ids=queryset.values_list("id", flat=True))
    modeladmin.message_user(
        request, f"Canceled {_n(n, 'item')} (items already ended are left alone)."
    )


@admin.register(Item)
class ItemAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # Few, wrapping columns so the list fits a 1366 px screen; the item's page has the rest.
    list_display = ["item", "job", "state", "attempts", "item_cost", "short_error"]
    list_filter = ["state", "job__mode", JobFilter]
    list_select_related = ["job", "note", "batch"]
    search_fields = ["custom_id", "note__path", "error"]
    show_full_result_count = False
    actions = [cancel_selected_items]
    readonly_fields = [
        "custom_id", "job", "note", "tag_list", "batch", "state", "attempts", "error", "result", "usage",
        "cost", "created_at", "updated_at", "finished_at",
    ]  # fmt: skip
    fields = readonly_fields

    def has_cancel_permission(self, request):
        return can_change_jobs(request.user)

    @admin.display(description="Item", ordering="id")
    def item(self, item):
        return format_html(
            '{}<div class="vc-small vc-muted">{}</div>', item.subject, item.custom_id or ""
        )

    @admin.display(description="Cost", ordering="cost")
    def item_cost(self, item):
        return money(item.cost)

    @admin.display(description="Error")
    def short_error(self, item):
        return item.error[:80] + ("…" if len(item.error) > 80 else "")
