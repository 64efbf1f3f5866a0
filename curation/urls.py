"""Views beside the admin: job progress and review pages."""
from django.urls import path

app_name = "curation"

urlpatterns: list = []

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
