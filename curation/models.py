"""Curation jobs, the batches they submit, per-note items, the model's suggestions and reviews.

A `Suggestion` is what the machine proposed; a `Review` is what a person decided about it.
They are separate rows and neither is ever overwritten, so history stays readable.
"""

import datetime
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from ingest.models import Note, Vault
from ingest.notes import CURATED_FIELDS

MONEY = {"max_digits": 14, "decimal_places": 6, "default": Decimal("0")}


class Field(models.TextChoices):
    TAGS = "tags", "Tags"
    DESCRIPTION = "description", "Description"
    RELATED = "related", "Related notes"


# The curated keys are the note vocabulary's (ingest.notes): one list, one order.
ALL_FIELDS = list(CURATED_FIELDS)
assert set(ALL_FIELDS) == set(Field.values), "Field choices and CURATED_FIELDS disagree"


class Mode(models.TextChoices):
    AUTO = "auto", "Auto (1 note: real time, 2+: batch)"
    SYNC = "sync", "Real time, one by one"
    PARALLEL = "parallel", "Real time, in parallel"
    BATCH = "batch", "Message Batches (half price)"


class Job(models.Model):
    class Kind(models.TextChoices):
        CURATE = "curate", "Curate notes"
        CONSOLIDATE = "consolidate", "Tag consolidation"

    class State(models.TextChoices):
        PENDING = "pending", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Ended with failures"
        CANCELED = "canceled", "Canceled"

    FINAL_STATES = (State.SUCCEEDED, State.FAILED, State.CANCELED)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # curate: one item per note, suggestions; consolidate: one item per part of the vault's tag
    # list, TagConsolidation rows. Both run through the same runners, budget and recovery.
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CURATE)
    vault = models.ForeignKey(Vault, null=True, blank=True, on_delete=models.SET_NULL)
    selection = models.CharField(max_length=500, blank=True, help_text="How notes were chosen.")
    fields = models.JSONField(default=list)
    requested_mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.AUTO)
    mode = models.CharField(max_length=16, choices=Mode.choices, blank=True)
    urgent = models.BooleanField(default=False)
    model = models.CharField(max_length=100)
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.PENDING, db_index=True
    )
    cost_estimate = models.DecimalField(**MONEY)
    cost = models.DecimalField(**MONEY)
    max_cost = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True,
        help_text="The budget: no request is sent that would carry the job past it (empty: none).",
    )
    error = models.TextField(blank=True)
    # The run working the job holds its lease (curation/engine/recovery.py): "host:pid:tag" of
    # that run, or "" when a task for the job waits in the queue or nobody holds it.
    lease_owner = models.CharField(max_length=100, blank=True, default="")
    lease_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="The lease lapses then unless its run renews it."
    )
    request_id = models.CharField(
        max_length=200, blank=True, help_text="The API's request-id of the refusal that ended it."
    )
    retried_at = models.DateTimeField(
        null=True, blank=True, help_text="Last 'Retry failed items': the hedge counts from here."
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Job {self.pk}"

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL_STATES

    @property
    def is_consolidation(self) -> bool:
        return self.kind == self.Kind.CONSOLIDATE


class Batch(models.Model):
    class State(models.TextChoices):
        PREPARING = "preparing", "Preparing"
        SUBMITTING = "submitting", "Submitting"
        IN_PROGRESS = "in_progress", "In progress"
        CANCELING = "canceling", "Canceling"
        ENDED = "ended", "Ended"
        APPLIED = "applied", "Results applied"
        FAILED = "failed", "Failed (not sent, or abandoned)"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="batches")
    provider_id = models.CharField(max_length=128, null=True, blank=True, unique=True)
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.PREPARING, db_index=True
    )
    request_count = models.PositiveIntegerField(default=0)
    request_bytes = models.PositiveBigIntegerField(default=0)
    request_counts = models.JSONField(default=dict, blank=True, help_text="As last polled.")
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    poll_interval = models.FloatField(default=2.0)
    error = models.TextField(blank=True)
    # A refused or unanswered create waits until retry_at (no item attempt is used by it).
    retry_at = models.DateTimeField(null=True, blank=True)
    refusals = models.PositiveIntegerField(default=0, help_text="Creates refused in a row.")
    offered = models.JSONField(
        null=True, blank=True,
        help_text="custom_id -> the candidate paths its request offered, saved when submitted "
        "(checks `related` at apply without recomputing them); empty for batches sent before.",
    )
    adopted = models.BooleanField(
        default=False, help_text="Found at the provider after an unanswered create."
    )

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return self.provider_id or f"Batch {self.pk} (not submitted)"


class Item(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SUBMITTED = "submitted", "Submitted"
        SUCCEEDED = "succeeded", "Succeeded"
        ERRORED = "errored", "Errored"
        EXPIRED = "expired", "Expired"
        CANCELED = "canceled", "Canceled"
        FAILED = "failed", "Failed"

    FINAL_STATES = (State.SUCCEEDED, State.CANCELED, State.FAILED)

    # Indexed by unique_job_note, whose first column it is: a second index on it would only be
    # written to (every index is updated with each item's outcome: bench/batch_bench.py).
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="items", db_index=False)
    # None for an item of a consolidation job: it carries a part of the tag list instead.
    note = models.ForeignKey(
        Note, null=True, blank=True, on_delete=models.CASCADE, related_name="items"
    )
    batch = models.ForeignKey(
        Batch, null=True, blank=True, on_delete=models.SET_NULL, related_name="items"
    )
    # Unique by a constraint in Meta, not `unique=True`, and `state` indexed by Meta.indexes:
    # on PostgreSQL a field's own index comes with a second `varchar_pattern_ops` one for
    # LIKE 'x%' lookups, which nothing here makes.
    custom_id = models.CharField(max_length=64, null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    result = models.JSONField(null=True, blank=True, help_text="The API's answer, as received.")
    usage = models.JSONField(null=True, blank=True)
    cost = models.DecimalField(**MONEY)
    batch_cost = models.DecimalField(**MONEY, help_text="Of `cost`, what was billed at the batch price.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The note's content hash when the job was made: what its suggestions are for.
    note_hash = models.CharField(max_length=64, blank=True, default="", db_default="")
    tag_list = models.JSONField(
        null=True, blank=True,
        help_text="A consolidation item's part of the vault's tag list: [tag, notes, [titles]] "
        "each, as the request sends it.",
    )  # fmt: skip

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "note"], name="unique_job_note"),
            models.UniqueConstraint(fields=["custom_id"], name="unique_item_custom_id"),
        ]
        indexes = [models.Index(fields=["state"], name="item_state")]

    def __str__(self) -> str:
        return self.custom_id or f"Item {self.pk}"

    @property
    def subject(self) -> str:
        """What the item asks about, for a person: the note's path, or the tags it carries."""
        if self.note_id is not None:
            return self.note.path
        return f"tag list ({len(self.tag_list or []):,} tags)"


class Install(models.Model):
    """This deployment's random key: the prefix of its custom_ids, so a batch of another
    deployment sharing the API workspace can never be taken for one of ours."""

    key = models.CharField(max_length=16, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key


class Suggestion(models.Model):
    """One field's value proposed by the model for one note; never edited after creation."""

    class State(models.TextChoices):
        PENDING = "pending", "Awaiting review"
        APPROVED = "approved", "Approved"
        EDITED = "edited", "Approved with edits"
        REJECTED = "rejected", "Rejected"
        SUPERSEDED = "superseded", "Superseded"

    # Indexed by unique_item_field, whose first column it is (see Item.job).
    item = models.ForeignKey(
        Item, on_delete=models.CASCADE, related_name="suggestions", db_index=False
    )
    # `note` and `job` are copies of the item's, kept so the review queue filters and counts
    # without a join. The database checks them through `item` (whose own note and job are
    # checked), not again per row: those two checks per suggestion at each commit were a
    # sixth of applying a batch's results on PostgreSQL (bench/batch_bench.py, 3.3 of 22 s
    # at 100,000 items). Deleting a note or a job still deletes its suggestions (Django
    # cascades through both relations).
    note = models.ForeignKey(
        Note, on_delete=models.CASCADE, related_name="suggestions", db_constraint=False
    )
    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="suggestions", db_constraint=False
    )
    field = models.CharField(max_length=16, choices=Field.choices)
    value = models.JSONField()
    model = models.CharField(max_length=100)
    prompt_version = models.CharField(max_length=32, blank=True)
    cost = models.DecimalField(**MONEY)
    created_at = models.DateTimeField(auto_now_add=True)
    # The latest decision, kept here so the review queue filters without a join; the
    # decisions themselves (who, when, what) are Review rows.
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    # The content hash of the note text this suggestion was made for ("": unknown, made before
    # hashes were kept). Carried forward over our own exports, so only a change made outside
    # the app (an edit, then a re-import) makes it stale. Not indexed: it is only ever read
    # beside `note`, whose index finds the rows.
    note_hash = models.CharField(max_length=64, blank=True, default="", db_default="")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "field"], name="unique_item_field")
        ]
        indexes = [models.Index(fields=["state"], name="suggestion_state")]  # see Item.custom_id
        # Granted by the Moderator group (see the data migration creating the roles).
        permissions = [("review_suggestion", "Can approve, edit or reject suggestions")]

    def __str__(self) -> str:
        return f"{self.field} for {self.note}"

    @property
    def is_stale(self) -> bool:
        """Made for other text: the note changed (outside the app) since it was suggested."""
        return bool(self.note_hash) and self.note_hash != self.note.content_hash


class Review(models.Model):
    """A person's decision on a suggestion: approved, edited (with the value) or rejected."""

    class Decision(models.TextChoices):
        APPROVED = "approved", "Approved"
        EDITED = "edited", "Edited"
        REJECTED = "rejected", "Rejected"

    suggestion = models.ForeignKey(Suggestion, on_delete=models.CASCADE, related_name="reviews")
    decision = models.CharField(max_length=16, choices=Decision.choices)
    value = models.JSONField(null=True, blank=True, help_text="The value to export, if any.")
    before = models.JSONField(null=True, blank=True, help_text="The note's value at the time.")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="reviews"
    )
    decided_at = models.DateTimeField(auto_now_add=True)
    comment = models.TextField(blank=True)
    exported_at = models.DateTimeField(null=True, blank=True)
    note_hash = models.CharField(
        max_length=64, blank=True, default="", db_default="",
        help_text="The note's content hash when decided: the text the decision is for.",
    )  # fmt: skip
    stale_confirmed = models.BooleanField(
        default=False, db_default=False,
        help_text="Approved although the suggestion was made for other text, on purpose.",
    )  # fmt: skip
    replaces_own = models.BooleanField(
        default=False, db_default=False,
        help_text="Decided on the note's page over the description the person wrote, on purpose.",
    )  # fmt: skip

    class Meta:
        ordering = ["-decided_at", "-id"]

    def __str__(self) -> str:
        return f"{self.decision} {self.suggestion}"


class TagRename(models.Model):
    """A moderator's rename or merge of a tag across a vault (`old` and `old/...` become `new`).

    Recorded as an approved change; export applies it to every note that carries the tag.
    """

    vault = models.ForeignKey(Vault, on_delete=models.CASCADE, related_name="tag_renames")
    old = models.CharField(max_length=300)
    new = models.CharField(max_length=300, help_text="Empty: remove the tag.")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    decided_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["decided_at", "id"]

    def __str__(self) -> str:
        return f"{self.old} → {self.new or '(removed)'}"


class ReviewLock(models.Model):
    """Who is reviewing a note right now; a live lock (expires_at in the future) excludes others.

    Claimed with a conditional update or a unique insert, so two moderators never both hold it.
    """

    note = models.OneToOneField(Note, on_delete=models.CASCADE, related_name="review_lock")
    holder = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_locks"
    )
    claimed_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.note} held by {self.holder}"


class NoteVersion(models.Model):
    """A note's text as it was when a job was made for it, kept to show what changed since.

    One row per (note, content hash) that was curated: repeated jobs on unchanged text share it.
    """

    note = models.ForeignKey(Note, on_delete=models.CASCADE, related_name="versions")
    content_hash = models.CharField(max_length=64)
    frontmatter_raw = models.TextField(blank=True)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["note", "content_hash"], name="unique_note_version")
        ]

    def __str__(self) -> str:
        return f"{self.note} at {self.content_hash[:12]}"


class TagPolicy(models.TextChoices):
    FREE = "free", "Free: the model may add new tags"
    PREFER = "prefer", "Prefer existing tags: new ones are proposed, decided once each"
    ONLY = "only", "Existing tags only: anything else is dropped"


class Vocabulary(models.Model):
    """A vault's tag policy; its vocabulary is the vault's tags plus approved proposed tags."""

    vault = models.OneToOneField(Vault, on_delete=models.CASCADE, related_name="vocabulary")
    policy = models.CharField(max_length=16, choices=TagPolicy.choices, default=TagPolicy.FREE)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "vocabularies"

    def __str__(self) -> str:
        return f"{self.vault}: {self.get_policy_display()}"


class ProposedTag(models.Model):
    """A tag outside a vault's vocabulary that the model proposed: decided once for every note."""

    class State(models.TextChoices):
        PENDING = "pending", "Awaiting a decision"
        APPROVED = "approved", "Approved (joins the vocabulary)"
        REJECTED = "rejected", "Rejected (dropped everywhere)"
        MAPPED = "mapped", "Mapped onto an existing tag"

    vault = models.ForeignKey(Vault, on_delete=models.CASCADE, related_name="proposed_tags")
    tag = models.CharField(max_length=300)
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.PENDING, db_index=True
    )
    mapped_to = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["tag"]
        constraints = [
            models.UniqueConstraint(fields=["vault", "tag"], name="unique_vault_proposed_tag")
        ]

    def __str__(self) -> str:
        return self.tag

    @property
    def exported_tag(self) -> str | None:
        """What a note receives for this tag once decided; None while pending or if rejected."""
        if self.state == self.State.APPROVED:
            return self.tag
        if self.state == self.State.MAPPED:
            return self.mapped_to
        return None


class ProposedTagUse(models.Model):
    """One suggestion carrying a proposed tag: the note that receives it once approved."""

    proposed = models.ForeignKey(ProposedTag, on_delete=models.CASCADE, related_name="uses")
    suggestion = models.ForeignKey(
        Suggestion, on_delete=models.CASCADE, related_name="proposed_tag_uses"
    )
    note = models.ForeignKey(Note, on_delete=models.CASCADE, related_name="+")
    exported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["proposed", "suggestion"], name="unique_proposed_tag_use"
            )
        ]

    def __str__(self) -> str:
        return f"{self.proposed} on {self.note}"


class TagConsolidation(models.Model):
    """One merge or rename the model proposed for a vault's whole tag list (a consolidation
    job); approved, it becomes a TagRename that export applies to every note carrying the tag."""

    class State(models.TextChoices):
        PENDING = "pending", "Awaiting review"
        APPROVED = "approved", "Approved (a tag rename)"
        REJECTED = "rejected", "Rejected"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="consolidations")
    vault = models.ForeignKey(Vault, on_delete=models.CASCADE, related_name="consolidations")
    old = models.CharField(max_length=300)
    new = models.CharField(max_length=300)
    reason = models.CharField(max_length=500, blank=True)
    notes = models.PositiveIntegerField(default=0, help_text="Notes carrying the tag when proposed.")
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.PENDING, db_index=True
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    rename = models.ForeignKey(TagRename, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-notes", "old"]

    def __str__(self) -> str:
        return f"{self.old} → {self.new}"
class NoteWords(models.Model):
    """What the related-note index keeps of a note, and the content hash it was read from.

    Rebuilt only for notes whose hash changed, so a vault's index is built from these rows
    rather than by reading every note's text again (curation.engine.candidates).
    """

    note = models.OneToOneField(
        Note, on_delete=models.CASCADE, primary_key=True, related_name="index_words"
    )
    content_hash = models.CharField(max_length=64)
    words_format = models.PositiveSmallIntegerField(
        default=1, help_text="How the words were read (candidates.WORDS_FORMAT); older: read again."
    )
    words = models.TextField(blank=True, help_text="Its most frequent words, as `word:count`.")
    links = models.TextField(blank=True, help_text="Its body wikilink targets, one a line.")

    def __str__(self) -> str:
        return f"words of note {self.note_id}"


class Operation(models.Model):
    """Admin work too heavy for a web request, carried by a worker: its state, progress, result.

    The request stores what to do (`params`: the selection as note-id ranges, the options) and
    answers at once; `curation.operations.operation_run` does it and fills in the rest.
    """

    class Kind(models.TextChoices):
        CURATE = "curate", "Create a curation job"
        PREVIEW = "preview", "Preview export"
        EXPORT = "export", "Export approved to vault"
        IMPORT = "import", "Re-import from disk"
        DECIDE = "decide", "Decide suggestions"

    class State(models.TextChoices):
        PENDING = "pending", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Done"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    FINAL_STATES = (State.SUCCEEDED, State.FAILED, State.CANCELED)

    kind = models.CharField(max_length=16, choices=Kind.choices)
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.PENDING, db_index=True
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    description = models.CharField(max_length=500, blank=True)
    params = models.JSONField(default=dict, blank=True, help_text="What to do, as requested.")
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True, help_text="What it did.")
    error = models.TextField(blank=True)
    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="operations"
    )
    # Worked under a lease, as a job is (curation.operations.OperationLease): "host:pid:tag" of
    # the run holding it; "" when free or reserved for a queued task.
    lease_owner = models.CharField(max_length=100, blank=True, default="")
    lease_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="The lease lapses then unless its run renews it."
    )
    runs = models.PositiveSmallIntegerField(
        default=0, help_text="Runs started; more than one: a worker was lost on the way."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "background operation"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL_STATES


class Watch(models.Model):
    """A watched vault: imported every few minutes, its new and changed notes curated once a
    day in one batch job, within a spending limit per period (curation/engine/watch.py).

    Enabled, it has a django-q2 Schedule that runs wherever a worker runs; `running_since` is
    the lease of the run in progress, claimed with a conditional UPDATE so two never overlap.
    """

    class Period(models.TextChoices):
        MONTH = "month", "Month"
        WEEK = "week", "Week (Monday to Sunday)"

    vault = models.OneToOneField(Vault, on_delete=models.CASCADE, related_name="watch")
    enabled = models.BooleanField(default=False, help_text="Import and curate on the schedule.")
    every_minutes = models.PositiveIntegerField(
        default=15, validators=[MinValueValidator(1)], help_text="Import the vault this often."
    )
    curate_at = models.TimeField(
        default=datetime.time(2, 0),
        help_text="Each day at this local time (TIME_ZONE) new and changed notes are queued.",
    )
    limit = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True,
        help_text="US dollars the vault's jobs may spend per period (empty: no limit; each "
        "job still has its own maximum cost).",
    )  # fmt: skip
    period = models.CharField(max_length=8, choices=Period.choices, default=Period.MONTH)
    enabled_at = models.DateTimeField(
        null=True, blank=True, help_text="Curation is first due at the curate time after this."
    )
    last_import_at = models.DateTimeField(null=True, blank=True)
    last_import = models.CharField(max_length=500, blank=True, help_text="What it imported.")
    last_curate_at = models.DateTimeField(null=True, blank=True)
    outcome = models.TextField(blank=True, help_text="What the last curation pass did.")
    last_job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    running_since = models.DateTimeField(
        null=True, blank=True, help_text="A run holds the watch since then (its lease)."
    )
    running_token = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        verbose_name = "watched vault"

    def __str__(self) -> str:
        return f"watch of {self.vault}"
