"""Fixtures for the curation tests: notes written straight to the database, fast polling."""

import pytest

from ingest.models import Note, Vault


def word_for(i: int) -> str:
    """A word no other test note contains (letters first, so the emulator counts it)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return "zq" + letters[i // 676 % 26] + letters[i // 26 % 26] + letters[i % 26] + "word"


@pytest.fixture
def make_notes(db):
    """Create `n` curatable notes in vault `vault`, each with a unique word in title and body."""

    def build(n: int, *, vault: str = "main", folder: str = "notes", names=None) -> list[Note]:
        v, _ = Vault.objects.get_or_create(name=vault, defaults={"root": f"/tmp/{vault}"})
        start = Note.objects.count()
        rows = []
        for k in range(n):
            i = start + k
            word = word_for(i)
            name = names[k] if names else f"Note {i:04d}"
            body = f"The {word} method explains {word} in depth. More about {word} here.\n"
            rows.append(
                Note(
                    vault=v, path=f"{folder}/{name}.md", folder=folder, title=f"{word} {name}",
                    body=body, size=len(body.encode()), tags=["old/tag"],
                )
            )  # fmt: skip
        return Note.objects.bulk_create(rows)

    return build


@pytest.fixture
def fast_polls(settings):
    """Polls every few milliseconds so batch jobs finish at once against the emulator."""
    settings.CURATION_POLL_MIN_SECONDS = 0.01
    settings.CURATION_POLL_SECONDS = 0.05
    return settings
