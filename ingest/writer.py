"""Writing approved changes into a note's bytes: only the curated frontmatter keys change.

This is a pure function of (file bytes, changes) -> new bytes. It never reformats YAML it does
not own: the frontmatter is parsed only to *locate* the curated keys (`tags`, `description`,
`related`), and the edits are spliced into the original text at those positions, so every other
key keeps its order, quoting, flow/block style, comments and indentation, and the body after
the closing `---` is copied byte for byte from the original file.

Style decisions (kept in one place so import and export agree):
- An existing flow list (`tags: [a, b]`) stays flow: new items go after the last one.
- An existing block list keeps its dash/indent prefix: new items copy the last item's prefix.
- New items are quoted like the list's items when all of them share one quote style, else
  written plain where YAML allows (quoted otherwise).
- A list is created (block style, the indent other lists in the file use, else two spaces)
  only when one is needed: the key is absent, empty (`tags:`), or a single string
  (`tags: a, b`) that must gain or lose a tag. An untouched single string stays as it is.
- The user's own tags are kept in their spelling; a tag is removed or renamed only by a
  moderator's rename. A tag is never added twice (compared without `#`, case-insensitively).
- Tags are written to `tags`. An older `tag:` key is another key like any other: left as it
  is, but a tag it already holds is not added again under `tags`.
- `related` items are double-quoted wikilinks `"[[Name]]"`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import yaml

from ingest import notes
from ingest.notes import CURATED_FIELDS, tag_clean

_DUMP = {"allow_unicode": True, "width": 2**31, "sort_keys": False}


class ExportError(Exception):
    """The note cannot be rewritten safely; the message is the reason shown to the user."""


@dataclass(frozen=True)
class Link:
    """A wikilink to add: the name written inside `[[...]]` and the target's path (no `.md`)."""

    name: str
    target: str


@dataclass
class Changes:
    """What to change in one note's frontmatter; empty fields change nothing."""

    add_tags: list[str] = field(default_factory=list)
    tag_renames: list[tuple[str, str]] = field(default_factory=list)  # (old, new); new "" removes
    description: str | None = None
    add_related: list[Link] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.add_tags or self.tag_renames or self.add_related) and (
            self.description is None
        )


# -- names and links -----------------------------------------------------------------------


ANCHOR = re.compile(r"&([^\s,\[\]{}]+)")


def link_names(paths: list[str]) -> dict[str, str]:
    """The shortest unambiguous link name of each note, as Obsidian writes it.

    The file name without `.md` when no other note shares it (case-insensitively), else the
    shortest path suffix that only this note has (the full path without `.md` at worst).
    """
    suffixes = {path: notes.link_suffixes(path)[:-1] for path in paths}  # without `.md`
    counts = Counter(notes.link_key(s) for found in suffixes.values() for s in found)
    return {path: next((s for s in found if counts[notes.link_key(s)] == 1), found[-1])
            for path, found in suffixes.items()}  # fmt: skip


def unnameable(paths: list[str]) -> set[str]:
    """The notes no link can name alone: another note's path differs from theirs only by case
    or Unicode form (`Kimchi.md` and `kimchi.md`, apart on Linux), and Obsidian resolves
    links without regard to either."""
    counts = Counter(notes.link_key(path) for path in paths)
    return {path for path in paths if counts[notes.link_key(path)] > 1}


def link_text(value) -> str | None:
    """The link path inside an existing `related` item (`[[a/B|alias]]` -> `a/B`), as a
    link_key (case and Unicode form set aside)."""
    while isinstance(value, list) and len(value) == 1:  # unquoted `- [[B]]` is a nested list
        value = value[0]
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith("[[") and text.endswith("]]"):
        text = text[2:-2]
    text = text.split("|", 1)[0].split("#", 1)[0].strip().lstrip("/")
    if text.lower().endswith(".md"):
        text = text[:-3]
    return notes.link_key(text) or None


def link_points_to(text: str, link: Link) -> bool:
    """Whether an existing link's path (a link_key) surely means `link`'s note: its path, or
    a tail of it no shorter than the link's own name (the shortest that names that note
    alone). `[[Permalinks]]` in a vault with two notes of that name may mean the other one,
    so it does not stand in for a link to this one."""
    target = notes.link_key(link.target)
    if len(text) < len(notes.link_key(link.name)):
        return False
    return target == text or target.endswith("/" + text)


# -- YAML scalars --------------------------------------------------------------------------


def _single_line(text: str) -> str:
    if "\n" in text.rstrip("\n").rstrip():
        raise ExportError("internal: a scalar rendered on several lines")
    return text.rstrip("\n")


# Shapes that need no YAML emitter (it is slow): plain words and paths, and double-quoted text
# without escapes. Anything else goes through PyYAML's emitter.
_PLAIN_SAFE = re.compile(r"[^\W\d_][\w\-/.]*(?: [\w\-/.]+)*")
_PLAIN_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
_QUOTE_SAFE = re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff]*")


def render_scalar(value: str, *, style: str | None = None, flow: bool = False) -> str:
    """`value` as one line of YAML: plain where safe, else quoted; `style` is a preference."""
    if style is None and _PLAIN_SAFE.fullmatch(value) and value.lower() not in _PLAIN_WORDS:
        return value
    if style == '"' and _QUOTE_SAFE.fullmatch(value):
        # Written by hand: PyYAML escapes every character past U+FFFF (`"\U0001F3B5"`), so an
        # emoji would reach the note as eight letters of escape. Only `\` and `"` need one.
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if style == '"':
        return _single_line(yaml.safe_dump(value, default_style='"', **_DUMP))
    if style == "'":
        return _single_line(yaml.safe_dump(value, default_style="'", **_DUMP))
    if flow:
        text = _single_line(yaml.safe_dump([value], default_flow_style=True, **_DUMP))[1:-1]
        return render_scalar(value, style='"') if text.startswith("'") else text
    text = _single_line(yaml.safe_dump({"k": value}, default_flow_style=False, **_DUMP))[3:]
    if text.startswith("'"):  # plain cannot hold it: Obsidian's own choice is double quotes
        return render_scalar(value, style='"')
    return text


# -- locating things in the frontmatter text -----------------------------------------------


def _node_end(node: yaml.Node, text: str) -> int:
    """Where a value's own text ends: not the comments or blank lines PyYAML counts in."""
    if isinstance(node, yaml.ScalarNode):
        if node.style in ("|", ">"):  # a block scalar's span runs on over trailing blank lines
            span = text[node.start_mark.index : node.end_mark.index]
            return node.start_mark.index + len(span.rstrip())
        return node.end_mark.index
    if node.flow_style or not node.value:
        return node.end_mark.index
    if isinstance(node, yaml.SequenceNode):
        return _node_end(node.value[-1], text)
    last_key, last_value = node.value[-1]
    return max(_node_end(last_key, text), _node_end(last_value, text))


def _line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def _after_line(text: str, pos: int) -> int:
    """The offset just after the newline that ends the line holding `pos`."""
    nl = text.find("\n", pos)
    return len(text) if nl < 0 else nl + 1


@dataclass
class _Entry:
    key: yaml.ScalarNode
    value: yaml.Node
    colon: int  # offset of the `:` after the key


class _Frontmatter:
    """The frontmatter YAML text with the positions of its top-level keys."""

    def __init__(self, text: str, newline: str):
        self.text = text
        self.newline = newline
        try:
            # The importer's loader: both read a note the same way (libyaml when present).
            root = yaml.compose(text, Loader=notes.YAML_LOADER)
        except yaml.YAMLError as exc:
            raise ExportError(
                f"frontmatter YAML cannot be read: {str(exc).splitlines()[0]}"
            ) from None
        self.entries: dict[str, _Entry] = {}
        self.key_indent = ""
        self.item_prefix = "  - "
        # A flow mapping (`{"title": "x"}`, one line of JSON as some tools write it) is edited
        # inside its braces, in its own style: new keys go after the last value.
        self.flow = False
        self.flow_end = 0
        self.flow_quote: str | None = None
        if root is None:
            return
        if not isinstance(root, yaml.MappingNode):
            raise ExportError("frontmatter is not a mapping of keys to values")
        if root.flow_style:
            close = root.end_mark.index - 1
            if text[close : close + 1] != "}":
                raise ExportError("frontmatter flow mapping does not end with `}`; not edited")
            self.flow = True
            self.flow_end = _node_end(root.value[-1][1], text) if root.value else close
            first_key = root.value[0][0] if root.value else None
            if first_key is None:  # `{}`: written as JSON, the style of most flow frontmatter
                self.flow_quote = '"'
            elif isinstance(first_key, yaml.ScalarNode) and first_key.style in ('"', "'"):
                self.flow_quote = first_key.style
        seen_prefix = False
        for key, value in root.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            if key.value in self.entries and key.value in CURATED_FIELDS:
                raise ExportError(f"the key {key.value!r} appears twice in the frontmatter")
            colon = text.find(":", key.end_mark.index)
            if colon < 0 or text[key.end_mark.index : colon].strip():
                raise ExportError(f"cannot find the ':' after the key {key.value!r}")
            if key.value in CURATED_FIELDS and "\n" in text[key.end_mark.index : colon]:
                raise ExportError(f"`{key.value}` is an explicit key (`? {key.value}` with its "
                                  "value on the next line); not edited")  # fmt: skip
            if key.value in CURATED_FIELDS and value.start_mark.index < colon:
                raise ExportError(f"`{key.value}` is an alias of another value; not edited")
            anchor = ANCHOR.match(text[colon + 1 :].lstrip(" \t"))
            if key.value in CURATED_FIELDS and anchor and f"*{anchor.group(1)}" in text:
                raise ExportError(f"`{key.value}` carries an anchor ({anchor.group(0)}) that "
                                  "another key repeats; editing it would change that key too; "
                                  "not edited")  # fmt: skip
            self.entries.setdefault(key.value, _Entry(key, value, colon))
            if (
                not seen_prefix
                and isinstance(value, yaml.SequenceNode)
                and not value.flow_style
                and value.value
            ):
                prefix = self._item_prefix(value.value[0])
                column = key.start_mark.column
                if prefix is not None and prefix[:column].strip() == "":
                    self.item_prefix, seen_prefix = prefix[column:], True
        first = root.value[0][0] if root.value else None
        if first is not None:
            self.key_indent = " " * first.start_mark.column

    def _item_prefix(self, item: yaml.Node) -> str | None:
        """The `  - ` in front of a block-list item, when the item starts its line that way."""
        start = _line_start(self.text, item.start_mark.index)
        prefix = self.text[start : item.start_mark.index]
        return prefix if re.fullmatch(r" *- +", prefix) else None

    def end_of_value(self, entry: _Entry) -> int:
        value = entry.value
        if isinstance(value, yaml.ScalarNode) and value.tag.endswith(":null") and (
            value.start_mark.index == value.end_mark.index
        ):
            return entry.colon + 1
        return _node_end(value, self.text)


# -- the edit ------------------------------------------------------------------------------


@dataclass
class _Edit:
    start: int
    end: int
    text: str


def _rename(tag: str, renames: list[tuple[str, str]]) -> str:
    """Apply the moderators' renames in order (`old` and `old/...`); "" means removed."""
    for old, new in renames:
        old_c, new_c = tag_clean(old), tag_clean(new)
        n = len(old_c)
        if old_c and tag[:n].lower() == old_c.lower() and (len(tag) == n or tag[n] == "/"):
            if not new_c:
                return ""
            tag = new_c + tag[n:]
    return tag


class _Writer:
    def __init__(self, fm: _Frontmatter):
        self.fm = fm
        self.edits: list[_Edit] = []
        self.appended: list[str] = []  # new keys, each a block of lines, at the end
        self.flow_added: list[str] = []  # new keys of a flow mapping, `key: value` each

    # Lists -----------------------------------------------------------------------------

    def _list_lines(self, texts: list[str], prefix: str | None = None) -> str:
        prefix = self.fm.key_indent + self.fm.item_prefix if prefix is None else prefix
        return "".join(prefix + t + self.fm.newline for t in texts)

    def set_list(self, key: str, kept: list, new_texts: list[str], entry: _Entry | None):
        """Replace or create `key` as a fresh block list of `kept` source texts + new ones
        (a flow list `[...]` in a flow mapping)."""
        if self.fm.flow:
            items = "[" + ", ".join(kept + new_texts) + "]"
            if entry is None:
                self.flow_added.append(f"{self._flow_key(key)}: {items}")
            else:
                self.edits.append(_Edit(entry.colon + 1, self.fm.end_of_value(entry), " " + items))
            return
        lines = self._list_lines(kept + new_texts)
        if entry is None:
            self.appended.append(f"{self.fm.key_indent}{key}:{self.fm.newline}{lines}")
            return
        end = self.fm.end_of_value(entry)
        text = self.fm.text
        self.edits.append(_Edit(entry.colon + 1, end, ""))
        self.edits.append(_Edit(_after_line(text, end), _after_line(text, end), lines))

    def _flow_key(self, key: str) -> str:
        return render_scalar(key, style=self.fm.flow_quote) if self.fm.flow_quote else key

    def append_to_sequence(self, seq: yaml.SequenceNode, texts: list[str]) -> bool:
        """Add items after the last one in the list's own style; False if that is not safe."""
        text = self.fm.text
        if not texts:
            return True
        if seq.flow_style:
            if seq.value:
                at = _node_end(seq.value[-1], self.fm.text)
                self.edits.append(_Edit(at, at, "".join(", " + t for t in texts)))
            else:
                close = seq.end_mark.index - 1
                if text[close] != "]":
                    return False
                self.edits.append(_Edit(close, close, ", ".join(texts)))
            return True
        if not seq.value:
            return False
        last = seq.value[-1]
        prefix = self.fm._item_prefix(last)
        if prefix is None:
            return False
        at = _after_line(text, _node_end(last, self.fm.text))
        self.edits.append(_Edit(at, at, self._list_lines(texts, prefix)))
        return True

    # Fields ----------------------------------------------------------------------------

    def tags(self, add: list[str], renames: list[tuple[str, str]]) -> list[str] | None:
        """Edit the tags key; returns the tags the note should end with (None: unchanged)."""
        key = "tags"
        entry = self.fm.entries.get(key)
        value = entry.value if entry else None
        add = [t for t in (tag_clean(a) for a in add) if t]
        if any(name != key for name in notes.tag_keys(self.fm.entries)):
            # Tags held by `tag` or `Tags:` are the note's too: not added again under `tags`.
            loaded = notes.load_yaml(self.fm.text)
            legacy = notes.tags_from({name: loaded.get(name) for name in notes.tag_keys(loaded)
                                      if name != key})  # fmt: skip
            add = [t for t in add if _rename(t, renames).lower() not in {x.lower() for x in legacy}]
        if isinstance(value, yaml.SequenceNode):
            return self._tags_in_sequence(key, entry, value, add, renames)
        # Absent, empty, a single string or something else: read its tags like the importer.
        own: list[str] = []
        if entry is not None and isinstance(value, yaml.ScalarNode):
            loaded = notes.load_yaml(self.fm.text).get(key)
            own = notes.tags_from({"tags": loaded}) if loaded is not None else []
        elif entry is not None and not (isinstance(value, yaml.ScalarNode)):
            raise ExportError(f"`{key}` is a mapping, not a list of tags; not edited")
        final, seen, changed = [], set(), False
        kept = {tag.lower() for tag in own if _rename(tag, renames) == tag}
        for tag in own:
            renamed = _rename(tag, renames)
            if renamed == tag:  # the user's own tag stays
                seen.add(tag.lower())
                final.append(tag)
                continue
            changed = True
            if renamed and renamed.lower() not in seen and renamed.lower() not in kept:
                seen.add(renamed.lower())
                final.append(renamed)
        for tag in add:
            tag = _rename(tag, renames)
            if tag and tag.lower() not in seen:
                seen.add(tag.lower())
                final.append(tag)
                changed = True
        if not changed:
            return None
        texts = [render_scalar(t, style=self.fm.flow_quote, flow=self.fm.flow) for t in final]
        if entry is None and not texts:
            return None
        self.set_list(key, [], texts, entry)
        return final

    def _tags_in_sequence(self, key, entry, seq, add, renames):
        items = seq.value
        final: list[str] = []
        seen: set[str] = set()
        removed: list[int] = []
        changed = False
        readable = [
            (index, item, tag_clean(item.value))
            for index, item in enumerate(items)
            if isinstance(item, yaml.ScalarNode) and not item.tag.endswith(":null")
        ]  # other items (empty, nested) are left exactly as they are
        kept = {own.lower() for _, _, own in readable if own and _rename(own, renames) == own}
        for index, item, own in readable:
            if not own:
                continue
            renamed = _rename(own, renames)
            if renamed == own:
                seen.add(own.lower())  # the user's own tags stay, even their own duplicates
                final.append(own)
                continue
            changed = True
            if not renamed or renamed.lower() in seen or renamed.lower() in kept:
                removed.append(index)  # removed by a moderator, or merged into a tag it has
                continue
            seen.add(renamed.lower())
            final.append(renamed)
            style = item.style if item.style in ('"', "'") else None
            self.edits.append(
                _Edit(
                    item.start_mark.index,
                    item.end_mark.index,
                    render_scalar(renamed, style=style, flow=bool(seq.flow_style)),
                )
            )
        new = []
        for tag in add:
            tag = _rename(tag, renames)
            if tag and tag.lower() not in seen:
                seen.add(tag.lower())
                final.append(tag)
                new.append(tag)
        if not new and not changed:
            return None
        style = _list_style(items) if items else self.fm.flow_quote
        texts = [render_scalar(t, style=style, flow=bool(seq.flow_style)) for t in new]
        if removed:
            self._rebuild_without(key, entry, seq, removed, texts)
        elif not self.append_to_sequence(seq, texts):
            self._rebuild_without(key, entry, seq, [], texts)
        return final

    def _rebuild_without(self, key, entry, seq, removed: list[int], texts: list[str]):
        """Rewrite the list without the removed items (renames already queued are redone)."""
        text = self.fm.text
        pending = {(e.start, e.end): e.text for e in self.edits}
        self.edits = [
            e
            for e in self.edits
            if not (seq.start_mark.index <= e.start <= _node_end(seq, self.fm.text))
        ]
        kept = []
        for index, item in enumerate(seq.value):
            if index in removed:
                continue
            span = (item.start_mark.index, item.end_mark.index)
            kept.append(pending.get(span, text[span[0] : _node_end(item, self.fm.text)]))
        if any("\n" in k for k in kept):
            raise ExportError(f"`{key}` holds a multi-line item; not rewritten")
        if seq.flow_style:
            self.edits.append(
                _Edit(seq.start_mark.index, seq.end_mark.index, "[" + ", ".join(kept + texts) + "]")
            )
            return
        prefix = (self.fm._item_prefix(seq.value[0]) if seq.value else None)
        if prefix is None:
            prefix = self.fm.key_indent + self.fm.item_prefix
        end = self.fm.end_of_value(entry)
        lines = self._list_lines(kept + texts, prefix)
        if not lines:
            self.edits.append(_Edit(entry.colon + 1, end, " []"))
            return
        self.edits.append(_Edit(entry.colon + 1, end, ""))
        self.edits.append(_Edit(_after_line(text, end), _after_line(text, end), lines))

    def description(self, value: str):
        entry = self.fm.entries.get("description")
        if entry is None and self.fm.flow:
            rendered = render_scalar(value, style=self.fm.flow_quote, flow=True)
            self.flow_added.append(f"{self._flow_key('description')}: {rendered}")
            return
        if entry is None:
            self.appended.append(
                f"{self.fm.key_indent}description: {render_scalar(value)}{self.fm.newline}"
            )
            return
        node = entry.value
        quoted = isinstance(node, yaml.ScalarNode) and node.style in ('"', "'")
        style = node.style if quoted else self.fm.flow_quote
        self.edits.append(
            _Edit(
                entry.colon + 1,
                self.fm.end_of_value(entry),
                " " + render_scalar(value, style=style, flow=self.fm.flow),
            )
        )

    def related(self, links: list[Link], *, body_links: list[str] = ()) -> list[str]:
        """Add the links not already there (in any spelling, nor in the body's own wikilinks);
        returns the link names added."""
        entry = self.fm.entries.get("related")
        value = entry.value if entry else None
        existing: list[str] = [t for t in (link_text(b) for b in body_links) if t]
        if entry is not None:
            loaded = notes.load_yaml(self.fm.text).get("related")
            items = loaded if isinstance(loaded, list) else [loaded]
            existing += [t for t in (link_text(i) for i in items) if t]
        new: list[str] = []
        for link in links:
            if any(link_points_to(t, link) for t in existing):
                continue
            existing.append(notes.link_key(link.target))
            new.append(link.name)
        if not new:
            return []
        texts = [render_scalar(f"[[{name}]]", style='"') for name in new]
        if isinstance(value, yaml.SequenceNode):
            if not self.append_to_sequence(value, texts):
                self._rebuild_without("related", entry, value, [], texts)
        elif isinstance(value, yaml.ScalarNode) and not value.tag.endswith(":null"):
            # One link written as a string: it becomes the first item of the list.
            own = self.fm.text[value.start_mark.index : _node_end(value, self.fm.text)]
            if "\n" in own or value.style in ("|", ">"):
                own = render_scalar(str(value.value), style='"')
            self.set_list("related", [own], texts, entry)
        elif entry is not None and isinstance(value, yaml.MappingNode):
            raise ExportError("`related` is a mapping, not a list of links; not edited")
        else:
            self.set_list("related", [], texts, entry)
        return new

    def result(self) -> str:
        text = self.fm.text
        if self.flow_added:
            at = self.fm.flow_end
            before = "" if text[at : at + 1] == "}" and not self.fm.entries else ", "
            self.edits.append(_Edit(at, at, before + ", ".join(self.flow_added)))
        edits = sorted(self.edits, key=lambda e: (e.start, e.end))
        for a, b in zip(edits, edits[1:], strict=False):
            if b.start < a.end:
                raise ExportError("internal: overlapping frontmatter edits")
        out = []
        pos = 0
        for edit in edits:
            out.append(text[pos : edit.start])
            out.append(edit.text)
            pos = edit.end
        out.append(text[pos:])
        new = "".join(out)
        if self.appended:
            if new and not new.endswith(("\n", "\r")):
                raise ExportError("frontmatter does not end with a newline")
            new += "".join(self.appended)
        return new


def _list_style(items: list[yaml.Node]) -> str | None:
    """The quote style new items copy: the one every existing item shares, else plain."""
    styles = {
        item.style if item.style in ('"', "'") else None
        for item in items
        if isinstance(item, yaml.ScalarNode) and not item.tag.endswith(":null")
    }
    return styles.pop() if len(styles) == 1 else None


# -- bytes in, bytes out -------------------------------------------------------------------


@dataclass
class Rewrite:
    data: bytes
    old_text: str
    new_text: str
    tags: list[str] | None  # the tags the note ends with, when they changed
    related_added: list[str]


def rewrite(data: bytes, changes: Changes) -> Rewrite:
    """The file's new bytes with `changes` applied; raises ExportError when it cannot be safe."""
    try:
        return _rewrite(data, changes)
    except RecursionError:  # the node walk is recursive; load_yaml bounds depth, this is a net
        raise ExportError("frontmatter nests too deeply to edit safely") from None


def _rewrite(data: bytes, changes: Changes) -> Rewrite:
    try:
        text, _, _ = notes.decode(data)
    except notes.NoteError as exc:
        raise ExportError(str(exc)) from None
    bom, codec = notes.bom_codec(data)
    payload = data[len(bom) :]
    if payload.decode(codec) == "\ufeff" + text:
        # decode() also drops a second BOM inside UTF-16 text; keep it with the first.
        bom, payload = bom + payload[:2], payload[2:]
    if payload.decode(codec) != text:
        raise ExportError("internal: the file does not decode back to its text")
    parts = notes.split(text)
    newline = notes.detect_newline(text)

    if parts.yaml is None:
        yaml_start = yaml_end = 0
        yaml_text = ""
    else:
        yaml_start = _after_line(text, 0)
        yaml_end = yaml_start + len(parts.yaml)
        yaml_text = parts.yaml
        if text[yaml_start:yaml_end] != yaml_text:
            raise ExportError("internal: frontmatter not where split() put it")
        newline = notes.detect_newline(text[: yaml_end] or text)

    if yaml_text:
        try:  # what the importer refuses (too deep, too large) export never edits
            notes.load_yaml(yaml_text)
        except notes.NoteError as exc:
            raise ExportError(str(exc)) from None
    fm = _Frontmatter(yaml_text, newline)
    writer = _Writer(fm)
    final_tags = None
    if changes.add_tags or changes.tag_renames:
        final_tags = writer.tags(changes.add_tags, changes.tag_renames)
    description = None
    if changes.description is not None:
        description = " ".join(str(changes.description).split())
        current = notes.load_yaml(yaml_text).get("description") if yaml_text else None
        if description and current != description:
            writer.description(description)
    related_added = []
    if changes.add_related:  # a link the body already has is the author's own: not repeated
        in_body = notes.body_links(parts.body)
        related_added = writer.related(changes.add_related, body_links=in_body)
    new_yaml = writer.result()

    if new_yaml == yaml_text:
        return Rewrite(data, text, text, None, [])
    if parts.yaml is None:
        head = f"---{newline}{new_yaml}---{newline}"
        new_text = head + text
        tail_at = 0
    else:
        new_text = text[:yaml_start] + new_yaml + text[yaml_end:]
        tail_at = yaml_end
    # Everything after the frontmatter YAML is copied from the original bytes, not re-encoded.
    tail_bytes = payload[len(text[:tail_at].encode(codec)) :]
    head_bytes = (new_text[: len(new_text) - (len(text) - tail_at)]).encode(codec)
    new_data = bom + head_bytes + tail_bytes
    _verify(text, new_data, changes, final_tags, description, related_added)
    return Rewrite(new_data, text, new_text, final_tags, related_added)


def _folded(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(t.lower() for t in tags))


def _verify(old_text, new_data, changes, final_tags, description, related_added) -> None:
    """Re-read the new bytes as the importer will and check nothing but the curated keys moved."""
    try:
        text, _, _ = notes.decode(new_data)
        old, new = notes.split(old_text), notes.split(text)
        old_meta = notes.load_yaml(old.yaml) if old.yaml else {}
        new_meta = notes.load_yaml(new.yaml) if new.yaml is not None else {}
    except notes.NoteError as exc:
        raise ExportError(f"internal: the rewritten note does not parse: {exc}") from None
    if new.body != old.body:
        raise ExportError("internal: the body would change")
    if new.yaml is None:
        raise ExportError("internal: the rewritten note has no frontmatter")
    for key in set(old_meta) | set(new_meta):
        if key in CURATED_FIELDS:
            continue
        if old_meta.get(key) != new_meta.get(key) or (key in old_meta) != (key in new_meta):
            raise ExportError(f"internal: the key {key!r} would change")
    if final_tags is not None:
        got = _folded(notes.tags_from({"tags": new_meta.get("tags")}))
        if got != _folded(final_tags):
            raise ExportError(f"internal: tags would read back as {got}, not {final_tags}")
    if description and new_meta.get("description") != description:
        raise ExportError("internal: description would not read back as written")
    if related_added:
        items = new_meta.get("related")
        texts = {link_text(i) for i in (items if isinstance(items, list) else [items])}
        if any(notes.link_key(name) not in texts for name in related_added):
            raise ExportError("internal: related links would not read back")
