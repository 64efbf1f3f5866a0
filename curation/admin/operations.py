"""Admin for background operations: what was asked, by whom, how far it got, its page."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from curation.models import Operation
from vaultcms.admin import ReadOnlyAdminMixin


@admin.register(Operation)
class OperationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["operation", "state", "progress", "created_by", "created_at"]
    list_filter = ["kind", "state"]
    list_select_related = ["created_by"]
    search_fields = ["=id", "description"]
    show_full_result_count = False
    readonly_fields = [
        "kind", "state", "description", "created_by", "created_at", "started_at",
        "finished_at", "runs", "done", "total", "job", "error", "params", "result",
    ]  # fmt: skip
    fields = readonly_fields

    @admin.display(description="Operation", ordering="id")
    def operation(self, op):
        url = reverse("curation:operation", args=[op.id])
        return format_html('<a href="{}">#{} {}</a><br><span class="vc-muted vc-small">{}</span>',
                           url, op.id, op.get_kind_display(), op.description)  # fmt: skip

    @admin.display(description="Progress")
    def progress(self, op):
        return f"{op.done:,} / {op.total:,}" if op.total else f"{op.done:,}"
