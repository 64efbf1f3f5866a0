"""Review pages beside the admin: one note's suggestions (with its lock) and the tag taxonomy."""

from collections import Counter

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from curation.models import Field, ProposedTag, Review, Suggestion, TagPolicy, TagRename
from curation.review.decisions import (
    ReviewError,
    note_value,
    related_removed_by_partners,
    suggestion_decide,
    typed_paths,
)
from curation.review.export import exports_revert, note_last_export
from curation.review.html import STYLE, suggested_html, value_html
from curation.review.locks import lock_seconds, note_lock_live, note_lock_release
from curation.review.stale import stale_diff
from curation.review.taxonomy import (
    tag_is_new,
    tag_rename,
    tag_tree,
    tag_tree_flat,
    vault_known_tags,
)
from curation.review.vocabulary import (
    proposed_tag_decide,
    proposed_tags_of,
    proposed_tags_overview,
    vault_policy,
    vault_policy_set,
)
from curation.roles import can_curate, can_export, can_review, can_view
from ingest.models import Note, Vault
from ingest.notes import is_link_target, tag_clean
from ingest.render import render_markdown

ACTIONS = {
    "approve": Review.Decision.APPROVED,
    "reject": Review.Decision.REJECTED,
    "edit": Review.Decision.EDITED,
}


def _page(request, template, context):
    return render(
        request, template, {**admin.site.each_context(request), "review_style": STYLE, **context}
    )


@staff_member_required
def note_review(request, note_id: int):
    """GET: show the note's suggestions and who holds its lock; POST: decide one suggestion.

    A GET never takes the lock: an image or link in some note's body pointing here would
    otherwise lock the note for whoever merely views that other note. The page claims the
    lock itself, by POST (curation.views.locks.note_lock), when a moderator opens it, and
    renews it while it stays open.
    """
    note = get_object_or_404(Note.objects.select_related("vault"), pk=note_id)
    if not can_view(request.user):
        raise PermissionDenied("You cannot see the review queue.")
    if request.method == "POST":
        return _note_decide(request, note)

    moderator = can_review(request.user)
    lock = note_lock_live(note_id=note.pk)
    holds_lock = bool(lock and lock.holder_id == request.user.pk)
    known = vault_known_tags(vault_id=note.vault_id)
    rows = []
    suggestions = list(note.suggestions.select_related("job").order_by("field", "-id"))
    proposed = proposed_tags_of(suggestion_ids=[s.pk for s in suggestions])
    partners = related_removed_by_partners(note=note, paths=[
        str(p) for s in suggestions if s.field == Field.RELATED and isinstance(s.value, list)
        for p in s.value
    ])  # fmt: skip
    own = note.own_description()
    for suggestion in suggestions:
        current = note_value(note, suggestion.field)
        value = suggestion.value
        suggestion.note = note  # is_stale compares with the note as loaded here
        stale = suggestion.is_stale
        carried = proposed.get(suggestion.pk, {})
        rows.append(
            {
                "s": suggestion,
                "current_html": value_html(suggestion.field, current),
                "suggested_html": suggested_html(
                    suggestion.field, value, current=current, known=known
                ),
                "stale": stale,
                "own": own is not None and suggestion.field == Field.DESCRIPTION,
                "stale_diff": stale_diff(suggestion) if stale else None,
                "proposed": sorted(carried.values(), key=lambda p: p.tag),
                "tags": [
                    {"tag": tag_clean(t), "new": tag_is_new(tag_clean(t), known)}
                    for t in (value if suggestion.field == Field.TAGS and isinstance(value, list)
                              else [])
                ],
                "paths": value if suggestion.field == Field.RELATED and isinstance(value, list)
                else [],
                "removed": [(p, partners[p]) for p in map(str, value) if p in partners]
                if suggestion.field == Field.RELATED and isinstance(value, list) else [],
                "text": value if isinstance(value, str) else "",
                "open": suggestion.state == Suggestion.State.PENDING,
            }
        )  # fmt: skip
    last_export = note_last_export(note_id=note.pk)
    history = (
        Review.objects.filter(suggestion__note=note)
        .select_related("reviewer", "suggestion")
        .order_by("-decided_at", "-id")
    )
    return _page(
        request,
        "curation/review/note.html",
        {
            "title": f"Review {note.path}",
            "note": note,
            "body_html": render_markdown(note.body),
            "linkable": is_link_target(note.path),
            "same_but_case": Note.objects.filter(vault_id=note.vault_id, path__iexact=note.path)
            .exclude(pk=note.pk).values_list("path", flat=True).first(),
            "rows": rows,
            "history": [
                {
                    "r": review,
                    "before_html": value_html(review.suggestion.field, review.before),
                    "after_html": value_html(review.suggestion.field, review.value),
                }
                for review in history
            ],
            "can_review": moderator,
            "lock": lock,
            "holds_lock": holds_lock,
            "lock_minutes": lock_seconds() // 60,
            "last_export": last_export,
            "can_export": can_export(request.user),
            "can_curate": can_curate(request.user),
        },
    )


def _note_decide(request, note: Note):
    if not can_review(request.user):
        raise PermissionDenied("Only moderators decide suggestions.")
    here = reverse("curation:review_note", args=[note.pk])
    suggestion_id = request.POST.get("suggestion_id", "")
    suggestion = (
        Suggestion.objects.filter(pk=int(suggestion_id), note_id=note.pk).first()
        if suggestion_id.isdigit()
        else None
    )
    if suggestion is None:
        messages.error(request, "No such suggestion on this note.")
        return HttpResponseRedirect(here)
    decision = ACTIONS.get(request.POST.get("action", ""))
    if decision is None:
        messages.error(request, "Unknown action.")
        return HttpResponseRedirect(here)
    value = None
    if decision == Review.Decision.EDITED:
        if suggestion.field == Field.DESCRIPTION:
            value = request.POST.get("value", "")
        elif suggestion.field == Field.RELATED:  # the kept notes plus any typed (names have spaces)
            typed = typed_paths(vault_id=note.vault_id, text=request.POST.get("extra", ""))
            value = request.POST.getlist("keep") + typed
        else:  # tags: the kept chips plus anything typed
            value = request.POST.getlist("keep") + request.POST.get("extra", "").split()
    try:
        review = suggestion_decide(
            suggestion_id=suggestion.pk,
            user=request.user,
            decision=decision,
            value=value,
            comment=request.POST.get("comment", ""),
            expected_state=request.POST.get("expected_state", Suggestion.State.PENDING),
            confirm_stale=request.POST.get("confirm_stale") == "1",
        )
    except ReviewError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, f"{suggestion.get_field_display()}: {review.get_decision_display().lower()}."
        )
    return HttpResponseRedirect(here)


@staff_member_required
@require_POST
def queue_decide(request):
    """One approve/reject button of a queue row: `decide` is "<id>:<state seen>:<action>"."""
    if not can_review(request.user):
        raise PermissionDenied("Only moderators decide suggestions.")
    back = request.POST.get("next") or request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("admin:curation_suggestion_changelist")
    suggestion_id, _, rest = request.POST.get("decide", "").partition(":")
    expected_state, _, action = rest.partition(":")
    decision = ACTIONS.get(action)
    if not suggestion_id.isdigit() or decision in (None, Review.Decision.EDITED):
        messages.error(request, "Unknown decision.")
        return HttpResponseRedirect(back)
    try:
        review = suggestion_decide(
            suggestion_id=int(suggestion_id),
            user=request.user,
            decision=decision,
            expected_state=expected_state,
        )
    except ReviewError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, f"{review.suggestion.note}: {review.suggestion.field} "
            f"{review.get_decision_display().lower()}."
        )  # fmt: skip
    return HttpResponseRedirect(back)


@staff_member_required
@require_POST
def note_release(request, note_id: int):
    """Give the note's lock back so another moderator can take it at once."""
    note = get_object_or_404(Note, pk=note_id)
    if note_lock_release(note_id=note.pk, user=request.user):
        messages.info(request, f"Released {note.path}.")
    return redirect("admin:curation_suggestion_changelist")


@staff_member_required
def taxonomy(request, vault_id: int | None = None):
    """The vault's tag tree with counts, new tags awaiting review, and rename/merge (POST)."""
    if not can_view(request.user):
        raise PermissionDenied("You cannot see the taxonomy.")
    if vault_id is None:
        vaults = list(Vault.objects.all())
        if len(vaults) == 1:
            return redirect("curation:review_taxonomy_vault", vault_id=vaults[0].pk)
        return _page(request, "curation/review/taxonomy.html", {"title": "Tags", "vaults": vaults})

    vault = get_object_or_404(Vault, pk=vault_id)
    here = reverse("curation:review_taxonomy_vault", args=[vault.pk])
    if request.method == "POST":
        if not can_review(request.user):
            raise PermissionDenied("Only moderators rename or merge tags.")
        try:
            rename = tag_rename(
                vault_id=vault.pk,
                old=request.POST.get("old", ""),
                new=request.POST.get("new", ""),
                user=request.user,
            )
        except ReviewError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Recorded {rename}; export applies it to every note.")
        return HttpResponseRedirect(here)

    known = vault_known_tags(vault_id=vault.pk)
    new_tags: Counter[str] = Counter()
    pending = Suggestion.objects.filter(
        note__vault=vault, field=Field.TAGS, state=Suggestion.State.PENDING
    ).values_list("value", flat=True)
    for value in pending.iterator(chunk_size=2000):
        for tag in value if isinstance(value, list) else []:
            tag = tag_clean(tag)
            if tag_is_new(tag, known):
                new_tags[tag] += 1
    return _page(
        request,
        "curation/review/taxonomy.html",
        {
            "title": f"Tags of {vault.name}",
            "vault": vault,
            "rows": tag_tree_flat(tag_tree(vault_id=vault.pk)),
            "new_tags": sorted(new_tags.items()),
            "renames": TagRename.objects.filter(vault=vault).select_related("decided_by"),
            "can_review": can_review(request.user),
        },
    )


@staff_member_required
@require_POST
def note_revert(request, note_id: int):
    """Undo the note's newest export, if the file is still exactly what it wrote."""
    note = get_object_or_404(Note, pk=note_id)
    if not can_export(request.user):
        raise PermissionDenied("Only moderators revert exports.")
    record = note_last_export(note_id=note.pk)
    if record is None:
        messages.error(request, f"{note.path} has no export to revert.")
    else:
        summary = exports_revert(records=[record], user=request.user)
        for path, reason in summary.conflicts:
            messages.error(request, f"Not reverted: {path}: {reason}")
        if summary.reverted:
            messages.success(request, f"Reverted the export of {note.path} ({record.written_at:%Y-%m-%d %H:%M}).")
    return redirect("curation:review_note", note_id=note.pk)


@staff_member_required
def proposed_tags(request, vault_id: int):
    """A vault's tag policy and its proposed tags: each decided once, for every note."""
    if not can_view(request.user):
        raise PermissionDenied("You cannot see proposed tags.")
    vault = get_object_or_404(Vault, pk=vault_id)
    here = reverse("curation:review_proposed_tags", args=[vault.pk])
    if request.method == "POST":
        if not can_review(request.user):
            raise PermissionDenied("Only moderators decide proposed tags.")
        try:
            if "policy" in request.POST:
                vault_policy_set(
                    vault_id=vault.pk, policy=request.POST["policy"], user=request.user
                )
                messages.success(request, "Tag policy saved.")
            else:
                tag = proposed_tag_decide(
                    proposed_id=int(request.POST.get("proposed_id") or 0),
                    user=request.user,
                    decision=request.POST.get("decision", ""),
                    mapped_to=request.POST.get("mapped_to", ""),
                )
                messages.success(request, f"{tag.tag}: {tag.get_state_display().lower()}.")
        except ReviewError as exc:
            messages.error(request, str(exc))
        return HttpResponseRedirect(here)
    return _page(
        request,
        "curation/review/proposed_tags.html",
        {
            "title": f"Proposed tags of {vault.name}",
            "vault": vault,
            "policy": vault_policy(vault_id=vault.pk),
            "policies": TagPolicy.choices,
            "rows": proposed_tags_overview(vault_id=vault.pk),
            "decided": proposed_tags_overview(vault_id=vault.pk, state=None),
            "can_review": can_review(request.user),
            "State": ProposedTag.State,
        },
    )
