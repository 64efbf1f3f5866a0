"""The curation admin: jobs and items, the review queue and audit trail, and the curate and
export actions added to ingest's Note and Vault admins. Each module registers on import."""

from curation.admin import jobs, notes, operations, review, watch  # noqa: F401
