"""Who may do what: every role check of the app (Curator, Moderator, Viewer; superusers all).

The groups are made by a data migration (curation 0004_roles); a door asks these functions,
never a permission string of its own.
"""

REVIEW_PERMISSION = "curation.review_suggestion"
VIEW_PERMISSION = "curation.view_suggestion"
CURATE_PERMISSION = "curation.add_job"
CHANGE_JOB_PERMISSION = "curation.change_job"
VIEW_WATCH_PERMISSION = "curation.view_watch"


def can_review(user) -> bool:
    """Moderators (the review_suggestion permission, via the Moderator group) and superusers."""
    return bool(user and user.is_active and user.has_perm(REVIEW_PERMISSION))


def can_view(user) -> bool:
    return bool(user and user.is_active and (user.has_perm(VIEW_PERMISSION) or can_review(user)))


def can_curate(user) -> bool:
    """Curators queue jobs (the add_job permission, via the Curator group) and superusers."""
    return bool(user and user.is_active and user.has_perm(CURATE_PERMISSION))


def can_change_jobs(user) -> bool:
    """Cancel, retry and switch running jobs."""
    return bool(user and user.is_active and user.has_perm(CHANGE_JOB_PERMISSION))


def can_export(user) -> bool:
    """Moderators (who decide what is approved) and users allowed to change notes."""
    return can_review(user) or bool(user and user.is_active and user.has_perm("ingest.change_note"))


def can_ingest_url(user) -> bool:
    """Curators and moderators may add notes; it writes a new file into the vault."""
    return bool(user and user.is_active) and (
        user.is_superuser or can_curate(user) or can_review(user)
    )


def can_view_watches(user) -> bool:
    """Every role (the view_watch permission) sees the watched vaults and what they did."""
    return bool(user and user.is_active and user.has_perm(VIEW_WATCH_PERMISSION))
