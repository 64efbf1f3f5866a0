"""Admin registrations for curation: jobs (admin_jobs) and review (admin_review)."""

from curation import admin_jobs, admin_review  # noqa: F401  (modules register on import)
