"""Views beside the admin: job progress, background operations and review pages."""

from django.urls import path

from curation.views import curate_now, jobs, locks, operations, review

app_name = "curation"

urlpatterns = [
    path("jobs/<int:job_id>/", jobs.job_page, name="job"),
    path("jobs/<int:job_id>/progress.json", jobs.job_progress, name="job-progress"),
    path("jobs/<int:job_id>/cancel/", jobs.job_cancel, name="job-cancel"),
    path("jobs/<int:job_id>/retry/", jobs.job_retry, name="job-retry"),
    path("notes/<int:note_id>/curate-now/", curate_now.note_curate, name="note-curate-now"),
    path("curate-now/<int:operation_id>/", curate_now.curate_now_page, name="curate-now"),
    path(
        "curate-now/<int:operation_id>/status.json", curate_now.curate_now_progress,
        name="curate-now-status",
    ),  # fmt: skip
    path("review/note/<int:note_id>/", review.note_review, name="review_note"),
    path(
        "review/note/<int:note_id>/release/", review.note_release, name="review_note_release"
    ),
    path("review/note/<int:note_id>/revert/", review.note_revert, name="review_note_revert"),
    path("review/note/<int:note_id>/lock/", locks.note_lock, name="review_note_lock"),
    path("review/decide/", review.queue_decide, name="review_decide"),
    path(
        "review/tags/<int:vault_id>/proposed/", review.proposed_tags,
        name="review_proposed_tags",
    ),  # fmt: skip
    path("review/tags/", review.taxonomy, name="review_taxonomy"),
    path("review/tags/<int:vault_id>/", review.taxonomy, name="review_taxonomy_vault"),
    path("operations/<int:operation_id>/", operations.operation_page, name="operation"),
    path(
        "operations/<int:operation_id>/progress.json",
        operations.operation_progress,
        name="operation-progress",
    ),
    path(
        "operations/<int:operation_id>/cancel/", operations.operation_cancel,
        name="operation-cancel",
    ),
    path(
        "operations/<int:operation_id>/export/", operations.operation_confirm_export,
        name="operation-confirm",
    ),
    path(
        "operations/<int:operation_id>/reimport/", operations.operation_reimport_conflicts,
        name="operation-reimport",
    ),
    path("export/preview/", operations.export_preview_all, name="export-preview-all"),
]
