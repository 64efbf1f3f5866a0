"""Exporting approved changes into the vault's files: safe, atomic, idempotent, confined.

`vault_export` is the one door (the `export_vault` command and the admin actions call it).
What it applies: per note, the approved fields not yet exported (`approved_values`), the links
those approvals imply on the *other* note of each link, and the vault's tag renames. A pair a
moderator removed on either note (`related_removals`) is written on neither.

A file whose bytes no longer match the hash recorded at import is a conflict and is left
alone: its reviews stay unexported, so `import_vault` (which records the new hash) followed by
another export re-applies them on top of the user's edit.
"""

import difflib
import logging
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from curation.models import Field, ProposedTag, ProposedTagUse, Review, Suggestion, TagRename
from curation.review.decisions import approved_values, related_removals
from curation.review.stale import note_hashes_carry
from curation.roles import can_export
from ingest import notes
from ingest.files import (
    FileChanged,
    UnsafePath,
    fsync_folder,
    refuse_unsafe_file,
    safe_path,
    write_atomic,
)
from ingest.importer import walk
from ingest.models import ExportRecord, Note, Vault, own_description_q
from ingest.notes import is_link_name, link_key, tag_clean
from ingest.writer import Changes, ExportError, Link, link_names, rewrite, unnameable

log = logging.getLogger(__name__)

CHUNK = 500


@dataclass
class ExportSummary:
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    conflicts: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    diffs: list[tuple[str, str]] = field(default_factory=list)  # (path, unified diff)
    missing: list[str] = field(default_factory=list)  # deleted from the vault: nothing to write
    held: list[tuple[str, str, str]] = field(default_factory=list)  # (note, note, why): a
    # link written on neither note, as one of the two could not be written this run
    stale: int = 0  # approvals held back: their note changed since (curate --stale)
    vetoed: list[tuple[str, str]] = field(default_factory=list)  # (note, note): an approved
    # link left out, as a moderator removed it from the second note's related suggestion
    own: int = 0  # approved descriptions held back: the note has the person's own
    dry_run: bool = False
    run: str = ""

    def line(self) -> str:
        verb = "would write" if self.dry_run else "written"
        line = (
            f"{verb} {len(self.written)}, unchanged {self.unchanged}, "
            f"conflicts {len(self.conflicts)}, errors {len(self.errors)}"
        )
        if self.missing:
            line += f", deleted from the vault {len(self.missing)}"
        if self.held:
            line += f", links held back {len(self.held)}"
        if self.stale:
            line += f", approvals for notes changed since held back {self.stale}"
        if self.vetoed:
            line += f", links a moderator removed left out {len(self.vetoed)}"
        if self.own:
            line += f", own descriptions kept {self.own}"
        return line

    @property
    def ok(self) -> bool:
        return not (self.conflicts or self.errors)


@dataclass
class _Plan:
    """Everything one note file will receive, and the reviews it carries out."""

    changes: Changes = field(default_factory=Changes)
    reviews: set[int] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)
    tag_uses: set[int] = field(default_factory=set)  # ProposedTagUse ids carried out


def vault_export(
    *,
    vault: Vault,
    note_ids: Iterable[int] | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> ExportSummary:
    """Write the approved, not yet exported changes of `vault` (or of `note_ids`) to disk."""
    summary = ExportSummary(dry_run=dry_run)
    run = uuid.uuid4().hex
    summary.run = run
    stale: list[tuple[int, str]] = []
    vetoed: list[tuple[str, str]] = []
    own: list[int] = []
    plans, review_notes, links = _plans(
        vault=vault, note_ids=note_ids, stale=stale, vetoed=vetoed, own=own
    )
    summary.vetoed = sorted(set(vetoed))
    chosen = set(note_ids) if note_ids is not None else None
    summary.stale = len([1 for note_id, _ in stale if chosen is None or note_id in chosen])
    summary.own = len(own)
    # The whole vault's small columns in one query: no `IN (...)` list as long as the vault.
    rows = {
        n.id: n
        for n in Note.objects.filter(vault=vault).only(
            "id", "path", "state", "reason", "content_hash", "vault_id"
        )
        if n.id in plans
    }
    held, why = _hold_back_one_way_links(plans=plans, links=links, rows=rows, vault=vault)
    pairs: dict[frozenset, tuple[str, str, str]] = {}  # a link approved from both ends is one
    for link in (link for group in held.values() for link in group):
        one, other = (rows[i].path if i in rows else f"note {i}" for i in (link.one, link.other))
        pairs.setdefault(frozenset((one, other)), (one, other, why.get(link.one)
                                                   or why.get(link.other, "")))  # fmt: skip
    summary.held = sorted(pairs.values())
    failed: set[int] = set()
    done: set[int] = set()
    folders: set[str] = set()  # folders written to: each fsynced once, at the end
    order = sorted(plans, key=lambda i: rows[i].path if i in rows else "")
    for index, note_id in enumerate(order, 1):
        note = rows.get(note_id)
        if note is None:
            continue
        # A review is exported once every note it writes to is: marked with the last of them,
        # in the same transaction as that note's file and record (see _export_note). One with
        # a link held back this run is not done.
        finishes = [rid for rid in _finishes(note_id, review_notes=review_notes, done=done,
                                             failed=failed, reviews=plans[note_id].reviews)
                    if rid not in held]  # fmt: skip
        try:
            if note.state == Note.State.MISSING:  # deleted by the user, and imported so:
                kind, detail = "missing", ""  # its approvals wait, in case it comes back
            else:
                kind, detail = _export_note(
                    note=note, vault=vault, plan=plans[note_id], dry_run=dry_run,
                    folders=folders, finishes=finishes, run=run,
                )  # fmt: skip
        except Exception as exc:  # one note that cannot be processed never stops the others
            log.exception("export error %s: %s", note.path, type(exc).__name__)
            kind, detail = "error", f"could not be processed ({type(exc).__name__}); see the log"
        if kind == "written":
            summary.written.append(note.path)
            if dry_run:
                summary.diffs.append((note.path, detail))
        elif kind == "unchanged":
            summary.unchanged += 1
        if kind in ("written", "unchanged"):
            done.add(note_id)
        elif kind == "missing":
            summary.missing.append(note.path)
            failed.add(note_id)
        else:
            failed.add(note_id)
            problems = summary.conflicts if kind == "conflict" else summary.errors
            problems.append((note.path, detail))
            log.warning("export %s %s: %s", kind, note.path, detail)
        if progress is not None:
            progress(index, len(order), note.path)

    for folder in folders:
        fsync_folder(folder)
    log.info("export vault=%s dry_run=%s %s", vault.name, dry_run, summary.line())
    return summary


def _finishes(note_id: int, *, reviews, review_notes, done, failed) -> list[int]:
    """The reviews this note is the last to write for, none of whose notes failed."""
    return [
        rid
        for rid in reviews
        if not (review_notes[rid] & failed) and review_notes[rid] - done == {note_id}
    ]


def _mark_exported(review_ids: list[int], *, tag_uses=()) -> None:
    """The reviews (and approved proposed-tag uses) a written note carried out."""
    now = timezone.now()
    for start in range(0, len(review_ids), CHUNK):
        chunk = review_ids[start : start + CHUNK]
        Review.objects.filter(id__in=chunk, exported_at__isnull=True).update(exported_at=now)
    uses = sorted(tag_uses)
    for start in range(0, len(uses), CHUNK):
        ProposedTagUse.objects.filter(
            id__in=uses[start : start + CHUNK], exported_at__isnull=True
        ).update(exported_at=now)


@dataclass(frozen=True)
class _LinkPlan:
    """One link to write, on both notes: `there` on note `one`, `back` on note `other`."""

    review: int
    one: int
    other: int
    there: Link
    back: Link


def _plans(
    *, vault: Vault, note_ids, stale: list[tuple[int, str]] | None = None,
    vetoed: list[tuple[str, str]] | None = None,
    own: list[int] | None = None,
) -> tuple[dict[int, _Plan], dict[int, set[int]], list[_LinkPlan]]:
    """Per note id, what to write; per review id, every note that must be written for it; and
    every link, with its two ends. `stale` receives (note id, field) of the approvals held
    back because the note changed since (see approved_values); `vetoed` the (note path, other
    path) of approved links left out because a moderator removed the pair (see
    related_removals); `own`, the notes whose own description (Note.own_description) an
    approval not made on purpose over it would replace."""
    vault_notes = Note.objects.filter(vault=vault)
    table = list(vault_notes.exclude(state=Note.State.MISSING).values_list("id", "path", "state"))
    by_path = {path: (nid, state) for nid, path, state in table}
    path_of = {nid: path for nid, path, _ in table}
    # Link names are chosen against every note file on disk now, too: one added or renamed
    # since the last import would otherwise make a written name mean two notes.
    known = [path for _, path, _ in table]
    everyone = known + sorted({found.rel for found in walk(Path(vault.root))} - set(known))
    names = {path: name for path, name in link_names(everyone).items() if path in by_path}
    clash = unnameable(everyone)
    selected = set(note_ids) if note_ids is not None else None

    curated = vault_notes.filter(suggestions__isnull=False).values("id")
    approved = approved_values(note_ids=curated, held=stale)
    own_descriptions = {
        nid: " ".join(str(now).split())
        for nid, now in vault_notes.filter(own_description_q()).values_list(
            "id", "frontmatter__description"
        )
    }
    plans: dict[int, _Plan] = {}
    review_notes: dict[int, set[int]] = {}
    links: list[_LinkPlan] = []

    def plan(note_id: int, review_id: int | None = None, key: str | None = None) -> _Plan:
        p = plans.setdefault(note_id, _Plan())
        if review_id is not None:
            p.reviews.add(review_id)
            review_notes.setdefault(review_id, set()).add(note_id)
        if key:
            p.fields.add(key)
        return p

    by_name: dict[str, int | None] = {}
    for path, name in names.items():  # a link name only this note answers to
        key = link_key(name)
        by_name[key] = None if key in by_name else by_path[path][0]

    def resolve(value) -> int | None:
        """A related value is a note path; `Name`, `[[Name]]` or a path without .md also work."""
        text = str(value).strip().removeprefix("[[").removesuffix("]]").split("|")[0].strip()
        for candidate in (text, f"{text}.md"):
            if candidate in by_path:
                return by_path[candidate][0]
        bare = text[:-3] if text.lower().endswith(".md") else text
        return by_name.get(link_key(bare))

    def target(note_id: int) -> Link | None:
        path = path_of.get(note_id)
        if path is None or by_path[path][1] != Note.State.OK:
            return None
        name = names[path]
        # The name as written may carry a folder part.
        if path in clash or not is_link_name(name):
            return None
        return Link(name=name, target=path[:-3] if path.lower().endswith(".md") else path)

    removed = {
        frozenset((note_id, other_id))
        for note_id, paths in related_removals(note_ids=curated).items()
        for other_id in map(resolve, paths)
        if other_id is not None
    }

    # Proposed tags are decided once for every note (curation.review.vocabulary): they are taken
    # out of each approved value and added back through their uses, as decided.
    uses = list(
        ProposedTagUse.objects.filter(note__vault=vault).values_list(
            "id", "suggestion_id", "note_id", "proposed__tag", "proposed__state",
            "proposed__mapped_to", "suggestion__state", "exported_at",
            "suggestion__note_hash", "note__content_hash",
        )
    )  # fmt: skip
    proposed_in: dict[int, set[str]] = {}
    for _, suggestion_id, _, tag, *_ in uses:
        proposed_in.setdefault(suggestion_id, set()).add(tag.lower())

    for note_id, decided in approved.items():
        for key, entry in decided.items():
            if entry["exported"]:
                continue
            value, review_id = entry["value"], entry["review_id"]
            if key == Field.RELATED:
                found = (resolve(p) for p in (value if isinstance(value, list) else []))
                others = list(dict.fromkeys(i for i in found if i is not None and i != note_id))
                # A link is one decision with two ends: if either end is selected, all of it.
                if selected is not None and not ({note_id, *others} & selected):
                    continue
                plan(note_id, review_id)
                for other_id in others:
                    if frozenset((note_id, other_id)) in removed:
                        if vetoed is not None:
                            vetoed.append((path_of.get(note_id, ""), path_of.get(other_id, "")))
                        continue  # a moderator said these two are not related
                    there, back = target(other_id), target(note_id)
                    if there is None or back is None:
                        continue  # a link is written on both notes, or on neither
                    plan(note_id, review_id, "related").changes.add_related.append(there)
                    plan(other_id, review_id, "related").changes.add_related.append(back)
                    links.append(_LinkPlan(review_id, note_id, other_id, there, back))
                continue
            if selected is not None and note_id not in selected:
                continue
            if key == Field.DESCRIPTION and isinstance(value, str):
                mine = own_descriptions.get(note_id)
                on_purpose = entry["decision"] == Review.Decision.EDITED or entry["replaces_own"]
                if mine is not None and not on_purpose and " ".join(value.split()) != mine:
                    if own is not None:  # stays unexported: only a decision on it alone may
                        own.append(note_id)
                    continue
            p = plan(note_id, review_id, key)
            if key == Field.TAGS and isinstance(value, list):
                held = proposed_in.get(entry["suggestion_id"], set())
                p.changes.add_tags.extend(str(t) for t in value if str(t).lower() not in held)
            elif key == Field.DESCRIPTION and isinstance(value, str):
                p.changes.description = value

    live = (Suggestion.State.PENDING, Suggestion.State.APPROVED, Suggestion.State.EDITED)
    decided = {ProposedTag.State.APPROVED: None, ProposedTag.State.MAPPED: None}
    for use_id, _, note_id, tag, state, mapped_to, s_state, exported_at, made_for, now in uses:
        if exported_at is not None or state not in decided or s_state not in live:
            continue
        if made_for and made_for != now:
            continue  # proposed for other text: the note changed since (stale)
        if selected is not None and note_id not in selected:
            continue
        p = plan(note_id, None, "tags")
        p.changes.add_tags.append(mapped_to if state == ProposedTag.State.MAPPED else tag)
        p.tag_uses.add(use_id)

    renames = [(r.old, r.new) for r in TagRename.objects.filter(vault=vault)]
    if renames:
        olds = [tag_clean(old).lower() for old, _ in renames]
        for note_id, tags in vault_notes.filter(state=Note.State.OK).values_list("id", "tags"):
            if selected is not None and note_id not in selected:
                continue
            lowered = [str(t).lower() for t in tags or []]
            if any(t == o or t.startswith(o + "/") for t in lowered for o in olds):
                plan(note_id, None, "tags")
        for p in plans.values():
            p.changes.tag_renames = renames
    return plans, review_notes, links


def _hold_back_one_way_links(
    *, plans: dict[int, _Plan], links: list[_LinkPlan], rows: dict[int, Note], vault: Vault
) -> tuple[dict[int, list[_LinkPlan]], dict[int, str]]:
    """A link is written on both notes or on neither. Every note at an end of a link is tried
    first (read, compared with its import, rewritten in memory; nothing written): where one
    cannot be written this run (changed on disk, deleted, its frontmatter refused...), the
    link is taken off both plans. Returns, per review, the links held back (such a review
    stays unexported, so the next export, once the note can be written, writes them), and
    per note that held one back, why.

    Only notes that take a link are tried, and each again only when its plan changed."""
    held: dict[int, list[_LinkPlan]] = {}
    why: dict[int, str] = {}
    ready: dict[int, bool] = {}
    while links:
        for note_id in {end for link in links for end in (link.one, link.other)} - set(ready):
            note = rows.get(note_id)
            kind, detail, _ = (_prepare(note=note, vault=vault, plan=plans[note_id])
                               if note is not None else ("error", "not imported", None))
            ready[note_id] = kind in ("ready", "unchanged")
            if not ready[note_id]:
                why[note_id] = f"{note.path if note else note_id}: {kind}: {detail}"
        blocked = [link for link in links if not (ready[link.one] and ready[link.other])]
        if not blocked:
            break
        links = [link for link in links if ready[link.one] and ready[link.other]]
        for link in blocked:
            plans[link.one].changes.add_related.remove(link.there)
            plans[link.other].changes.add_related.remove(link.back)
            held.setdefault(link.review, []).append(link)
            ready.pop(link.one, None)  # a smaller plan: try again
            ready.pop(link.other, None)
    for plan in plans.values():
        if not plan.changes.add_related:
            plan.fields.discard("related")
    return held, why


def _export_note(
    *, note: Note, vault: Vault, plan: _Plan, dry_run: bool, folders: set[str],
    finishes: list[int], run: str = "",
) -> tuple[str, str]:
    """("written" | "unchanged" | "conflict" | "error", detail) for one note file.

    A written file, its Note row, its ExportRecord and the reviews it finishes are one unit:
    the rows are saved in a transaction whose last step replaces the file, so a failure
    before the file is replaced leaves neither, and a failure of the commit puts the old
    bytes back.
    """
    kind, detail, prepared = _prepare(note=note, vault=vault, plan=plan)
    if kind == "unchanged" and not dry_run:
        _mark_exported(finishes)
    if prepared is None:
        return kind, detail
    path, data, old_hash, result, parsed = prepared
    if dry_run:
        return "written", unified_diff(note.path, result.old_text, result.new_text)
    try:
        with transaction.atomic():
            _record(note=note, data=data, new=result.data, parsed=parsed, plan=plan,
                    old_hash=old_hash, run=run)  # fmt: skip
            _mark_exported(finishes, tag_uses=plan.tag_uses)
            write_atomic(path, result.data, expect_hash=old_hash, sync_folder=False)
    except FileChanged:
        try:
            if notes.read_regular(path, limit=-1) == result.data:  # another export was first
                return "unchanged", ""
        except OSError:
            pass
        return "conflict", "changed on disk during the export; run import_vault, then export again"
    except OSError as exc:
        return "error", f"cannot write: {exc.strerror or exc}"
    except DatabaseError as exc:
        _restore(path, new=result.data, old=data)
        return "error", f"cannot record the export: {exc}"
    folders.add(os.path.dirname(path))
    try:  # the mtime the next import compares; a miss only costs that import a re-hash
        Note.objects.filter(id=note.id).update(mtime_ns=os.stat(path).st_mtime_ns)
    except (OSError, DatabaseError):
        pass
    return "written", ""


def _prepare(*, note: Note, vault: Vault, plan: _Plan) -> tuple[str, str, tuple | None]:
    """The note's new bytes, made in memory: ("ready", "", (path, old bytes, old hash, the
    rewrite, the new text parsed)), or ("unchanged" | "conflict" | "error", detail, None)."""
    if note.state != Note.State.OK:
        state = note.get_state_display().lower()
        return "error", f"note is {state}: {note.reason or 'not imported'}", None
    try:
        path = safe_path(vault.root, note.path)
        refuse_unsafe_file(path)
        data = notes.read_regular(path, limit=-1)
    except (UnsafePath, notes.NotRegular) as exc:
        return "error", str(exc), None
    except OSError as exc:
        return "error", f"cannot read: {exc.strerror or exc}", None
    old_hash = notes.content_hash(data)
    if old_hash != note.content_hash:
        return "conflict", (
            "changed on disk since it was imported; run import_vault, then export again"
        ), None  # fmt: skip
    try:
        result = rewrite(data, plan.changes)
        if result.data == data:
            return "unchanged", "", None
        parsed = notes.parse(result.data, path=note.path)  # what the next import will see
    except (ExportError, notes.NoteError) as exc:
        return "error", str(exc), None
    if len(result.data) > settings.VAULTCMS_MAX_NOTE_BYTES:
        return "error", "the note would grow past VAULTCMS_MAX_NOTE_BYTES", None
    return "ready", "", (path, data, old_hash, result, parsed)


def _restore(path: str, *, new: bytes, old: bytes) -> None:
    """The rows were not saved: if the new bytes reached the file, put the old ones back."""
    try:
        if notes.read_regular(path, limit=-1) == new:
            write_atomic(path, old, expect_hash=notes.content_hash(new))
    except (OSError, FileChanged):
        log.exception("export: could not restore %s after a failed commit", path)


def _record(
    *, note: Note, data: bytes, new: bytes, parsed, plan: _Plan, old_hash: str, run: str
) -> None:
    """Bring the Note row up to date with the file about to be written (re-import sees no
    change) and record what the export replaced, so it can be reverted.

    What was current for the old text (suggestions, decisions) stays current: it was our write.
    """
    new_hash = notes.content_hash(new)
    written = {}
    if plan.changes.description is not None:  # ours now: a later approval may replace it
        written["description_written"] = str(parsed.metadata.get("description") or "")
    Note.objects.filter(id=note.id).update(
        frontmatter_raw=parsed.yaml or "",
        frontmatter=parsed.metadata,
        tags=parsed.tags,
        title=parsed.title[:1024],
        content_hash=new_hash,
        size=len(new),
        updated_at=timezone.now(),
        **written,
    )
    note_hashes_carry(note_id=note.id, old_hash=old_hash, new_hash=new_hash)
    old_head, new_head_length = heads(data, new)
    ExportRecord.objects.create(
        note_id=note.id,
        fields=sorted(plan.fields),
        reviews=sorted(plan.reviews),
        old_hash=old_hash,
        new_hash=new_hash,
        old_head=old_head,
        new_head_length=new_head_length,
        run=run,
    )


def _note_refresh(*, note: Note, data: bytes, path: str, old_hash: str) -> str:
    """Bring the Note row up to date with a file just written (a revert), so re-import sees no
    change; what was current for the replaced text stays current: it was our write.
    `description_written` stays the reverted export's: the description put back differs from
    it, so it counts as the person's own (kept until decided on purpose)."""
    parsed = notes.parse(data, path=note.path)
    st = os.stat(path)
    new_hash = notes.content_hash(data)
    with transaction.atomic():
        Note.objects.filter(id=note.id).update(
            frontmatter_raw=parsed.yaml or "",
            frontmatter=parsed.metadata,
            tags=parsed.tags,
            title=parsed.title[:1024],
            content_hash=new_hash,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            updated_at=timezone.now(),
        )
        note_hashes_carry(note_id=note.id, old_hash=old_hash, new_hash=new_hash)
    return new_hash


def heads(old: bytes, new: bytes) -> tuple[bytes, int]:
    """(old head, length of the new head): the bytes before the longest common tail.

    An export rewrites only the frontmatter at the top, so the common tail is at least the
    body and the heads are small; `old == old_head + new[new_head_length:]`.
    """
    low, high = 0, min(len(old), len(new))  # equal tails of every length up to the longest
    while low < high:  # binary search on slice comparisons (memcmp), not a loop per byte
        mid = (low + high + 1) // 2
        if old[len(old) - mid :] == new[len(new) - mid :]:
            low = mid
        else:
            high = mid - 1
    return old[: len(old) - low], len(new) - low


def unified_diff(path: str, old: str, new: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}"
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


# --- undoing an export ----------------------------------------------------------------------


@dataclass
class RevertSummary:
    reverted: list[str] = field(default_factory=list)
    conflicts: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def line(self) -> str:
        return f"reverted {len(self.reverted)}, conflicts {len(self.conflicts)}"

    @property
    def ok(self) -> bool:
        return not self.conflicts


def exports_revert(*, records: Iterable[ExportRecord], user) -> RevertSummary:
    """Put back what each export record replaced, if the file is still exactly what it wrote.

    The file becomes old head + its unchanged rest, byte for byte what it was before the
    export (checked against the recorded hash before writing). A file changed since (edited,
    or exported again: revert the later export first) is a conflict and is left alone.
    Newest records first, so reverting a whole run or several runs of a note unwinds in order.
    """
    if not can_export(user):
        raise PermissionError("Only moderators (or users who may change notes) revert exports.")
    summary = RevertSummary()
    ordered = sorted(records, key=lambda r: (r.written_at, r.id), reverse=True)
    for record in ordered:
        note = Note.objects.select_related("vault").get(pk=record.note_id)
        problem = _revert_one(record=record, note=note, user=user)
        if problem:
            summary.conflicts.append((note.path, problem))
            log.warning("revert conflict %s: %s", note.path, problem)
        else:
            summary.reverted.append(note.path)
    log.info("revert by=%s %s", getattr(user, "username", "?"), summary.line())
    return summary


def _revert_one(*, record: ExportRecord, note: Note, user) -> str:
    """"" when reverted, else the reason it was not."""
    if record.reverted_at is not None:
        return "already reverted"
    if record.old_head is None or record.new_head_length is None:
        return "this export kept nothing to revert to (written before undo was kept)"
    try:
        path = safe_path(note.vault.root, note.path)
        refuse_unsafe_file(path)
        with open(path, "rb") as fh:
            data = fh.read()
    except UnsafePath as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if notes.content_hash(data) != record.new_hash:
        return "changed since this export wrote it (edited, or exported again: revert that first)"
    old = bytes(record.old_head) + data[record.new_head_length :]
    if notes.content_hash(old) != record.old_hash:
        return "the old text cannot be rebuilt exactly; left alone"
    try:
        write_atomic(path, old, expect_hash=record.new_hash)
    except FileChanged:
        return "changed on disk during the revert; left alone"
    except OSError as exc:
        return f"cannot write: {exc.strerror or exc}"
    with transaction.atomic():
        _note_refresh(note=note, data=old, path=path, old_hash=record.new_hash)
        ExportRecord.objects.filter(pk=record.pk, reverted_at__isnull=True).update(
            reverted_at=timezone.now(), reverted_by=user
        )
    return ""


def export_run_records(*, run: str):
    return ExportRecord.objects.filter(run=run, reverted_at__isnull=True)


def note_last_export(*, note_id: int) -> ExportRecord | None:
    """The note's newest export not yet reverted (the one "Revert this export" undoes)."""
    return ExportRecord.objects.filter(note_id=note_id, reverted_at__isnull=True).first()
