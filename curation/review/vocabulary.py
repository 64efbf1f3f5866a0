"""A vault's tag vocabulary and policy, and proposed tags: new tags decided once, not per note.

Policy (Vocabulary.policy, per vault):
    free    the model may add new tags; they are approved with their suggestion (as before)
    prefer  the prompt asks for existing tags; a new one becomes a ProposedTag with one
            ProposedTagUse per suggestion carrying it, and is decided once for all of them
    only    the prompt holds the model to the vocabulary, and `suggestions_vet` drops any
            other tag from the answer before it is stored (validation in code)

The vocabulary is every tag (and branch) the vault's notes have, plus approved proposed tags.
A decision on a proposed tag is one conditional UPDATE, whatever the number of suggestions:
export reads the decision through the uses (curation.review.export).
"""

from django.db.models import Count
from django.utils import timezone

from curation.models import Field, ProposedTag, ProposedTagUse, Suggestion, TagPolicy, Vocabulary
from curation.review.decisions import ReviewError, ReviewForbidden
from curation.roles import can_review
from ingest.models import Note
from ingest.notes import tag_clean, tag_prefixes

EXAMPLE_NOTES = 5  # notes listed beside each proposed tag


def vault_policy(*, vault_id: int) -> str:
    policy = Vocabulary.objects.filter(vault_id=vault_id).values_list("policy", flat=True).first()
    return policy or TagPolicy.FREE


def vault_policy_set(*, vault_id: int, policy: str, user) -> Vocabulary:
    if not can_review(user):
        raise ReviewForbidden("Only moderators change a vault's tag policy.")
    try:
        policy = TagPolicy(policy)
    except ValueError:
        raise ReviewError(f"Unknown tag policy {policy!r}.") from None
    vocabulary, _ = Vocabulary.objects.update_or_create(
        vault_id=vault_id, defaults={"policy": policy, "changed_by": user}
    )
    return vocabulary


def vault_vocabulary(*, vault_id: int) -> dict[str, str]:
    """{lower-cased tag: its spelling} for every tag and branch of the vault, plus approved
    proposed tags."""
    vocabulary: dict[str, str] = {}
    rows = Note.objects.filter(vault_id=vault_id, state=Note.State.OK).values_list("tags", flat=True)
    for tags in rows.iterator(chunk_size=5000):
        for tag in tags or []:
            for prefix in tag_prefixes(tag_clean(str(tag))):
                vocabulary.setdefault(prefix.lower(), prefix)
    approved = ProposedTag.objects.filter(vault_id=vault_id, state=ProposedTag.State.APPROVED)
    for tag in approved.values_list("tag", flat=True):
        for prefix in tag_prefixes(tag):
            vocabulary.setdefault(prefix.lower(), prefix)
    return vocabulary


def suggestions_vet(*, suggestions: list[dict]) -> tuple[list[dict], list[tuple[int, int, str]]]:
    """Hold tag suggestions to their vault's policy before they are stored.

    Returns the suggestions to store (tags outside the vocabulary dropped in `only` vaults;
    a tag suggestion left empty is not stored) and, for `prefer` vaults, the proposed tags as
    (item_id, vault_id, tag). Free vaults cost one query; others two, and one more per vault.
    """
    tag_rows = [s for s in suggestions if s["field"] == Field.TAGS]
    if not tag_rows:
        return suggestions, []
    # Every vault that holds its tags to a vocabulary (a few rows at most), before the notes'
    # vaults are looked up: with none, the common case, that lookup is not needed.
    policies = dict(
        Vocabulary.objects.exclude(policy=TagPolicy.FREE).values_list("vault_id", "policy")
    )
    if not policies:
        return suggestions, []
    note_vaults = dict(
        Note.objects.filter(id__in={s["note_id"] for s in tag_rows}).values_list("id", "vault_id")
    )
    vault_ids = set(note_vaults.values())
    policies = {v: p for v, p in policies.items() if v in vault_ids}
    if not policies:
        return suggestions, []
    vocabularies = {vault_id: vault_vocabulary(vault_id=vault_id) for vault_id in policies}
    kept, proposed = [], []
    for suggestion in suggestions:
        vault_id = note_vaults.get(suggestion["note_id"])
        if suggestion["field"] != Field.TAGS or vault_id not in policies:
            kept.append(suggestion)
            continue
        vocabulary = vocabularies[vault_id]
        tags = []
        for raw in suggestion["value"] if isinstance(suggestion["value"], list) else []:
            tag = tag_clean(str(raw))
            known = vocabulary.get(tag.lower())
            if known is not None:
                tags.append(known)
            elif policies[vault_id] == TagPolicy.PREFER and tag:
                tags.append(tag)
                proposed.append((suggestion["item_id"], vault_id, tag))
        tags = list(dict.fromkeys(tags))
        if tags:
            kept.append({**suggestion, "value": tags})
    return kept, proposed


def proposed_tags_record(*, proposed: list[tuple[int, int, str]]) -> int:
    """Create the proposed tags (once per vault and tag) and one use per suggestion carrying it."""
    if not proposed:
        return 0
    ProposedTag.objects.bulk_create(
        [ProposedTag(vault_id=v, tag=t) for v, t in {(v, t) for _, v, t in proposed}],
        ignore_conflicts=True,
    )
    vault_ids = {v for _, v, _ in proposed}
    tag_ids = {
        (v, t): pk
        for pk, v, t in ProposedTag.objects.filter(
            vault_id__in=vault_ids, tag__in={t for _, _, t in proposed}
        ).values_list("id", "vault_id", "tag")
    }
    suggestion_of = {
        item_id: (pk, note_id)
        for pk, item_id, note_id in Suggestion.objects.filter(
            item_id__in={i for i, _, _ in proposed}, field=Field.TAGS
        ).values_list("id", "item_id", "note_id")
    }
    uses = [
        ProposedTagUse(
            proposed_id=tag_ids[(v, t)],
            suggestion_id=suggestion_of[item_id][0],
            note_id=suggestion_of[item_id][1],
        )
        for item_id, v, t in proposed
        if item_id in suggestion_of and (v, t) in tag_ids
    ]
    ProposedTagUse.objects.bulk_create(uses, ignore_conflicts=True)
    return len(uses)


def proposed_tags_overview(*, vault_id: int, state: str | None = ProposedTag.State.PENDING):
    """Proposed tags with how many notes would receive them and a few of those notes."""
    tags = ProposedTag.objects.filter(vault_id=vault_id).select_related("decided_by")
    if state:
        tags = tags.filter(state=state)
    live = ProposedTagUse.objects.exclude(
        suggestion__state__in=[Suggestion.State.REJECTED, Suggestion.State.SUPERSEDED]
    )
    counts = dict(
        live.filter(proposed__in=tags)
        .values_list("proposed_id")
        .annotate(n=Count("note_id", distinct=True))
        .order_by()
    )
    rows = []
    for tag in tags:
        examples = list(
            live.filter(proposed=tag)
            .select_related("note")
            .order_by("note__path")
            .values_list("note_id", "note__path")[:EXAMPLE_NOTES]
        )
        rows.append({"tag": tag, "count": counts.get(tag.pk, 0), "examples": examples})
    return rows


def proposed_tag_decide(
    *, proposed_id: int, user, decision: str, mapped_to: str = "", expected_state: str = ""
) -> ProposedTag:
    """Approve, reject or map one proposed tag: one conditional UPDATE for every note.

    Approved: the tag joins the vocabulary and every live suggestion carrying it counts as
    approved for it. Rejected: dropped from every suggestion. Mapped: every suggestion carries
    `mapped_to` (an existing tag) instead. Another moderator deciding first wins.
    """
    if not can_review(user):
        raise ReviewForbidden("Only moderators decide proposed tags.")
    try:
        decision = ProposedTag.State(decision)
    except ValueError:
        raise ReviewError(f"Unknown decision {decision!r}.") from None
    if decision == ProposedTag.State.PENDING:
        raise ReviewError("Choose approve, reject or map.")
    target = ""
    if decision == ProposedTag.State.MAPPED:
        target = tag_clean(mapped_to)
        if not target or any(ch.isspace() for ch in target):
            raise ReviewError("Map onto one existing tag (no spaces).")
    proposed = ProposedTag.objects.filter(pk=proposed_id).first()
    if proposed is None:
        raise ReviewError(f"No proposed tag {proposed_id}.")
    if target and target.lower() == proposed.tag.lower():
        raise ReviewError("A tag cannot be mapped onto itself.")
    if target:
        known = vault_vocabulary(vault_id=proposed.vault_id).get(target.lower())
        if known is None:
            raise ReviewError(f"{target} is not an existing tag of this vault; map onto one that is.")
        target = known
    moved = ProposedTag.objects.filter(
        pk=proposed_id, state=expected_state or ProposedTag.State.PENDING
    ).update(state=decision, mapped_to=target, decided_by=user, decided_at=timezone.now())
    proposed = ProposedTag.objects.select_related("decided_by").get(pk=proposed_id)
    if moved != 1:
        who = proposed.decided_by.get_username() if proposed.decided_by else "someone"
        raise ReviewError(
            f"{who} already decided {proposed.tag} ({proposed.get_state_display().lower()}); "
            "your decision was not saved."
        )
    return proposed


def proposed_tags_of(*, suggestion_ids) -> dict[int, dict[str, ProposedTag]]:
    """{suggestion id: {lower-cased tag: ProposedTag}} for display and export."""
    result: dict[int, dict[str, ProposedTag]] = {}
    rows = ProposedTagUse.objects.filter(suggestion_id__in=suggestion_ids).select_related(
        "proposed"
    )
    for use in rows:
        result.setdefault(use.suggestion_id, {})[use.proposed.tag.lower()] = use.proposed
    return result
