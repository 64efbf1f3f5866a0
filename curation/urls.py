"""Views beside the admin: job progress and review pages."""
from django.urls import path

app_name = "curation"

urlpatterns: list = []

from curation import views_jobs  # noqa: E402  (job progress pages; issue 5)

urlpatterns += [
    path("jobs/<int:job_id>/", views_jobs.job_page, name="job"),
    path("jobs/<int:job_id>/progress.json", views_jobs.job_progress, name="job-progress"),
    path("jobs/<int:job_id>/cancel/", views_jobs.job_cancel, name="job-cancel"),
    path("jobs/<int:job_id>/retry/", views_jobs.job_retry, name="job-retry"),
]

from curation import review_views  # noqa: E402  (review pages; issue 7)

urlpatterns += [
    path("review/note/<int:note_id>/", review_views.note_review, name="review_note"),
    path(
        "review/note/<int:note_id>/release/",
        review_views.note_release,
        name="review_note_release",
    ),
    path("review/decide/", review_views.queue_decide, name="review_decide"),
    path("review/tags/", review_views.taxonomy, name="review_taxonomy"),
    path("review/tags/<int:vault_id>/", review_views.taxonomy, name="review_taxonomy_vault"),
]
