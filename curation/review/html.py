"""Small HTML fragments for review pages; every piece of note or model text is escaped."""

import difflib
import re

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from curation.models import Field
from curation.review.taxonomy import tag_is_new
from ingest.notes import tag_clean

STYLE = """
.rv-chip { display:inline-block; padding:1px 8px; margin:1px 2px; border-radius:10px;
  background:var(--darkened-bg); border:1px solid var(--hairline-color); font-size:0.85em; }
.rv-chip.rv-new { border-color:#c47f00; background:#fff4de; color:#6b4500; }
.rv-chip.rv-has { opacity:0.6; }
.rv-diff ins { background:#d9f5dd; color:#124d1b; text-decoration:none; }
.rv-diff del { background:#fbe0e0; color:#7a1010; }
.rv-muted { color:var(--body-quiet-color); }
"""


def tag_chips(tags, *, known: set[str] | None = None, current=()) -> SafeString:
    """Tags as chips: new ones (outside the vault's tree) flagged, ones the note has dimmed."""
    if not tags:
        return mark_safe('<span class="rv-muted">(none)</span>')
    current = set(current or [])
    chips = []
    for tag in tags:
        tag = tag_clean(tag)
        classes, title = "rv-chip", ""
        if known is not None and tag_is_new(tag, known):
            classes, title = "rv-chip rv-new", "new tag: outside the vault's existing branches"
        elif tag in current:
            classes, title = "rv-chip rv-has", "the note already has this tag"
        chips.append((classes, title, tag))
    return format_html_join(" ", '<span class="{}" title="{}">{}</span>', chips)


def description_diff(old, new) -> SafeString:
    """A word diff from the note's description to the suggested one."""
    old_words = re.findall(r"\S+|\s+", str(old or ""))
    new_words = re.findall(r"\S+|\s+", str(new or ""))
    parts = []
    matcher = difflib.SequenceMatcher(a=old_words, b=new_words, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            parts.append(escape("".join(old_words[a1:a2])))
            continue
        if op in ("delete", "replace"):
            parts.append(format_html("<del>{}</del>", "".join(old_words[a1:a2])))
        if op in ("insert", "replace"):
            parts.append(format_html("<ins>{}</ins>", "".join(new_words[b1:b2])))
    return format_html('<span class="rv-diff">{}</span>', mark_safe("".join(parts)))


def path_list(paths) -> SafeString:
    if not paths:
        return mark_safe('<span class="rv-muted">(none)</span>')
    if not isinstance(paths, list):
        return escape(str(paths))
    return format_html_join(", ", "<code>{}</code>", ((str(p),) for p in paths))


def value_html(field: str, value, *, known: set[str] | None = None, current=None) -> SafeString:
    """Any field's value for display (the current one, or a suggested one)."""
    if field == Field.TAGS:
        return tag_chips(value if isinstance(value, list) else [], known=known, current=current)
    if field == Field.RELATED:
        return path_list(value)
    if value in (None, ""):
        return mark_safe('<span class="rv-muted">(none)</span>')
    return escape(str(value))


def suggested_html(field: str, value, *, current, known: set[str] | None = None) -> SafeString:
    """A suggested value beside what the note has now: a diff for descriptions."""
    if field == Field.DESCRIPTION:
        return description_diff(current, value)
    return value_html(field, value, known=known, current=current)
