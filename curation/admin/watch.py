"""Admin for watched vaults: the schedule, the limit, the last runs and what the last did.

Saving a watch (here or inline on its vault) brings its django-q2 Schedule up to date through
the same service as `manage.py watch` (curation.engine.watch.watch_schedule_sync).
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


class WatchRecordMixin:
    """The read-only record of a watch's runs, shared by its admin and its vault's inline."""

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


class WatchInline(WatchRecordMixin, admin.StackedInline):
    """On the vault's page: whether it is watched, on what schedule, within what limit."""

    model = Watch
    can_delete = False
    max_num = 1
    extra = 1
    fields = [*SETTINGS, *RECORD]
    readonly_fields = RECORD
    verbose_name = "watched vault (import and curate on a schedule)"


    @staticmethod
    def formset_saved(formset) -> None:
        """After the vault's page saved this inline: the Schedule follows each saved watch."""
        for form in formset.forms:
            if form.instance.pk:
                watch_schedule_sync(watch=form.instance)
