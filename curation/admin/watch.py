"""Admin for watched vaults: the schedule, the limit, the last runs and what the last did.

Saving a watch brings its django-q2 Schedule up to date through the same service as
`manage.py watch` (curation.engine.watch.watch_schedule_sync). The vault's list and page link
here (`watch_link`), rather than carry a form of their own.
"""

from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from curation.engine.watch import watch_allowance, watch_schedule_sync
from curation.models import Watch
from curation.templatetags.vaultcms_money import money

SETTINGS = ["enabled", "every_minutes", "curate_at", "limit", "period"]
RECORD = ["enabled_at", "last_import_at", "last_import", "last_curate_at", "outcome",
          "job_link", "spent_this_period", "running_since"]  # fmt: skip


def watch_link(vault):
    """"Watched (every 15 min, 02:00)" or "Not watched", linking to the watch's page."""
    try:
        watch = vault.watch  # the vaults' list selects it with the vault
    except Watch.DoesNotExist:
        watch = None
    if watch is None:
        url = reverse("admin:curation_watch_add") + f"?vault={vault.pk}"
        return format_html('<a href="{}">Not watched: set up</a>', url)
    url = reverse("admin:curation_watch_change", args=[watch.pk])
    if not watch.enabled:
        return format_html('<a href="{}">Not on the schedule</a>', url)
    return format_html('<a href="{}">Watched (every {} min, curated at {})</a>', url,
                       watch.every_minutes, f"{watch.curate_at:%H:%M}")  # fmt: skip


class WatchRecordMixin:
    """The read-only record of a watch's runs."""

    @admin.display(description="Last job")
    def job_link(self, watch):
        if not watch.last_job_id:
            return "-"
        url = reverse("curation:job", args=[watch.last_job_id])
        return format_html('<a href="{}">Job {}</a>', url, watch.last_job_id)

    @admin.display(description="Spent this period")
    def spent_this_period(self, watch):
        if not watch.pk:
            return "-"
        allowance = watch_allowance(watch=watch, now=timezone.now())
        if allowance is None:
            return "no limit"
        return (f"{money(allowance.spent)} of {money(allowance.limit)} this {watch.period} "
                f"(until {allowance.next_period})")  # fmt: skip


@admin.register(Watch)
class WatchAdmin(WatchRecordMixin, admin.ModelAdmin):
    list_display = ["vault", "enabled", "every", "curate_at", "limit_display", "last_import_at",
                    "last_curate_at", "outcome"]  # fmt: skip
    list_filter = ["enabled", "period"]
    list_select_related = ["vault"]
    readonly_fields = RECORD
    fieldsets = [
        (None, {"fields": ["vault", *SETTINGS]}),
        ("Last runs", {"fields": RECORD}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [*RECORD, "vault"] if obj else RECORD

    @admin.display(description="Import every", ordering="every_minutes")
    def every(self, watch):
        return f"{watch.every_minutes} min"

    @admin.display(description="Limit", ordering="limit")
    def limit_display(self, watch):
        return f"{money(watch.limit)}/{watch.period}" if watch.limit is not None else "none"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        watch_schedule_sync(watch=obj)

    def delete_model(self, request, obj):
        obj.enabled = False
        watch_schedule_sync(watch=obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for watch in queryset:
            self.delete_model(request, watch)
