"""A vault (a folder of markdown notes) and the notes imported from it."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.fields.json import KT
from django.db.models.lookups import Exact, IsNull

from ingest.notes import link_name


class Vault(models.Model):
    name = models.CharField(max_length=200, unique=True)
    root = models.CharField(max_length=4096, help_text="Absolute path of the vault folder.")
    created_at = models.DateTimeField(auto_now_add=True)
    imported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Note(models.Model):
    class State(models.TextChoices):
        OK = "ok", "Imported"
        SKIPPED = "skipped", "Skipped"
        MISSING = "missing", "Missing from disk"

    vault = models.ForeignKey(Vault, on_delete=models.CASCADE, related_name="notes")
    path = models.CharField(max_length=4096, help_text="Path relative to the vault root, with /.")
    folder = models.CharField(max_length=4096, blank=True, db_index=True)
    title = models.CharField(max_length=1024, blank=True)
    frontmatter_raw = models.TextField(blank=True, help_text="The YAML between the --- lines.")
    frontmatter = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True, help_text="Tags as the note has them now.")
    body = models.TextField(blank=True)
    encoding = models.CharField(max_length=32, default="utf-8")
    has_bom = models.BooleanField(default=False)
    newline = models.CharField(max_length=2, default="\n")
    content_hash = models.CharField(max_length=64, blank=True, db_index=True)
    size = models.PositiveBigIntegerField(default=0)
    mtime_ns = models.BigIntegerField(default=0)
    description_written = models.TextField(
        blank=True, default="", db_default="",
        help_text="The description our last export wrote; any other one in the file is the "
        "person's own.",
    )  # fmt: skip
    state = models.CharField(max_length=16, choices=State.choices, default=State.OK, db_index=True)
    reason = models.TextField(blank=True, help_text="Why the file was skipped, if it was.")
    imported_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["vault", "path"]
        constraints = [models.UniqueConstraint(fields=["vault", "path"], name="unique_note_path")]

    def __str__(self) -> str:
        return self.path

    @property
    def name(self) -> str:
        """The note's link name as Obsidian uses it: the file name without `.md`."""
        return link_name(self.path)

    def own_description(self) -> str | None:
        """The description the person wrote (any but the one our export last wrote), or None.

        Export and bulk approval keep it; see `own_description_q` for the same rule in SQL."""
        value = self.frontmatter.get("description") if isinstance(self.frontmatter, dict) else None
        if value is None or value == "" or value == self.description_written:
            return None
        return value if isinstance(value, str) else str(value)


def own_description_q() -> Q:
    """Notes holding a description the person wrote: Note.own_description in SQL."""
    now = KT("frontmatter__description")
    return (
        Q(IsNull(now, False))
        & ~Q(frontmatter__description=None)  # `description:` with nothing after it
        & ~Q(Exact(now, ""))
        & ~Q(Exact(now, F("description_written")))
    )


class ExportRecord(models.Model):
    """One write of approved changes into a note file: what changed and the hashes around it."""

    note = models.ForeignKey(Note, on_delete=models.CASCADE, related_name="exports")
    written_at = models.DateTimeField(auto_now_add=True)
    fields = models.JSONField(default=list, help_text="The frontmatter keys that changed.")
    reviews = models.JSONField(default=list, help_text="Ids of the Reviews applied.")
    old_hash = models.CharField(max_length=64)
    new_hash = models.CharField(max_length=64)
    # What the write replaced, to undo it: the file is old_head + rest and new_head + rest with
    # the same rest (the body is never touched), so the differing heads are all that is kept.
    old_head = models.BinaryField(null=True, blank=True)
    new_head_length = models.PositiveIntegerField(null=True, blank=True)
    run = models.CharField(max_length=32, blank=True, db_index=True, help_text="The export run.")
    reverted_at = models.DateTimeField(null=True, blank=True)
    reverted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip

    class Meta:
        ordering = ["-written_at", "-id"]

    def __str__(self) -> str:
        return f"export of {self.note} at {self.written_at:%Y-%m-%d %H:%M}"
