"""What a note is: its bytes decoded, its frontmatter split from its body, its link name, its tags.

The note vocabulary every other module uses. The importer and the writer agree through these
functions, byte for byte, on where the frontmatter ends and the body begins; the engine, the
candidate index, review and export agree on a note's link name, which names can be linked, and
how a tag is cleaned.
"""

import codecs
import datetime
import hashlib
import math
import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import unquote

import yaml
from frontmatter.default_handlers import YAMLHandler

try:  # libyaml's loader parses the same YAML several times faster when present, and is not
    # recursive in Python: nesting cannot exhaust the stack (it stops at 1,000 levels itself)
    from yaml import CSafeLoader as YAML_LOADER
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as YAML_LOADER

_YAML = YAMLHandler()

# `---` on the first line, the YAML, then a line of `---` (or `...`). The body is everything
# after the closing line's newline, untouched.
FRONTMATTER_RE = re.compile(
    r"\A---[ \t]*\r?\n(?P<yaml>(?:.*?\r?\n)??)(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S
)

# A YAML alias can repeat a structure exponentially ("billion laughs"); stop converting
# frontmatter to JSON after this many values instead of exhausting memory.
MAX_FRONTMATTER_VALUES = 50_000
# Real frontmatter nests a few levels; a hostile note nests hundreds. A fixed limit, checked the
# same way on import and export, instead of whatever depth the caller's stack has left.
MAX_FRONTMATTER_DEPTH = 100


# The frontmatter keys curation writes, in the order they are asked for, shown and written.
CURATED_FIELDS = ("tags", "description", "related")

# A character in a note's name that breaks a `[[wikilink]]` to it (Obsidian's own rule).
LINK_BREAKING = frozenset("#^[]|")

_TAG_JUNK = re.compile(r"[^\w/-]+", re.U)
_DASHES = re.compile(r"-{2,}")


def link_name(path: str) -> str:
    """Obsidian's link name of a note: its file name without `.md` (any case)."""
    name = path.rsplit("/", 1)[-1]
    return name[:-3] if name.lower().endswith(".md") else name


def link_suffixes(path: str) -> list[str]:
    """The names a wikilink to `path` can take, shortest first: its name, each longer path
    suffix (`b/Name`, `a/b/Name`), the path itself (Obsidian resolves them all)."""
    parts = (path[:-3] if path.lower().endswith(".md") else path).split("/")
    return ["/".join(parts[i:]) for i in range(len(parts) - 1, -1, -1)] + [path]


def link_key(text: str) -> str:
    """How link names are compared: case and Unicode form set aside (a name written NFD, as
    macOS stores file names, is the same name NFC)."""
    return unicodedata.normalize("NFC", text).casefold()


def is_link_name(name: str) -> bool:
    """Whether `[[name]]` names what it says: it holds no character that breaks a wikilink,
    does not begin or end with a space (the text of a link is read trimmed, so `[[ Arepa]]`
    would name another note), and does not end in `.md` (`[[bake.md]]`, the link to
    `bake.md.md`, is read as naming `bake.md`)."""
    return (bool(name) and not (LINK_BREAKING & set(name)) and name == name.strip()
            and not name.lower().endswith(".md"))  # fmt: skip


def is_link_target(path: str) -> bool:
    """Whether a `[[wikilink]]` can point at this note by its name (see is_link_name)."""
    return is_link_name(link_name(path))


# Code (fenced or inline) shows link syntax without linking; a wikilink is `[[target|alias]]`
# or `[[target#heading]]`, `![[...]]` embeds, and `[text](Other%20Note.md)` is a markdown link.
CODE = re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n]*\n.*?^[ \t]*\1[^\n]*$|`[^`\n]*`", re.S | re.M)
WIKILINK = re.compile(r"(!?)\[\[([^\[\]\n]+)\]\]")
MDLINK = re.compile(r"\[[^\[\]\n]*\]\(\s*(?:<([^<>\n]+)>|([^()\s]+))(?:\s+\"[^\"\n]*\")?\s*\)")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def body_links(body: str) -> list[str]:
    """The notes a body already links to, in order, outside code: the target (no alias, no
    heading) of each wikilink and embed, and of each markdown link to a `.md` file (`%20`
    decoded, `./` and `../` dropped). Obsidian counts all three among a note's links."""
    text = CODE.sub(" ", body)
    found = []
    for match in WIKILINK.finditer(text):
        target = match.group(2).split("|", 1)[0].split("#", 1)[0].strip()
        if target:
            found.append((match.start(), target))
    for match in MDLINK.finditer(text):
        target = unquote(match.group(1) or match.group(2)).split("#", 1)[0].strip()
        if SCHEME.match(target) or not target.lower().endswith(".md"):
            continue  # an address, or an attachment
        parts = [part for part in target.split("/") if part not in ("", ".", "..")]
        if parts:
            found.append((match.start(), "/".join(parts)))
    return [target for _, target in sorted(found)]


def tag_clean(tag) -> str:
    """A tag as a person wrote it, made safe to compare and write: no `#`, no empty segment."""
    parts = [p.strip() for p in str(tag).strip().lstrip("#").split("/")]
    return "/".join(p for p in parts if p)


def tag_prefixes(tag: str) -> list[str]:
    """A tag and each branch above it: `a/b/c` is `a`, `a/b`, `a/b/c`."""
    parts = tag.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def tag_normalize(tag: str) -> str | None:
    """A suggested tag in the vault's canonical form: `#AI/Agent Frameworks` ->
    `ai/agent-frameworks`; None when nothing usable is left."""
    # Composed first: a decomposed `é` (e + combining accent) is not a word character, so it
    # would cut the word (`cre-me`), and the tag would not equal the vault's `crème`.
    text = unicodedata.normalize("NFC", tag).strip().lstrip("#").strip().lower()
    text = _TAG_JUNK.sub("-", "-".join(text.split()))
    segments = []
    for segment in text.split("/"):
        segment = _DASHES.sub("-", segment).strip("-_")
        if segment:
            segments.append(segment)
    result = "/".join(segments)
    if not result or result.replace("/", "").isdigit():
        return None  # Obsidian ignores purely numeric tags
    return result


class NoteError(Exception):
    """A file that cannot be imported; the message is the reason shown to the user."""


@dataclass
class Split:
    """A note's text cut into its frontmatter block and body."""

    yaml: str | None  # None: the note has no frontmatter block
    body: str
    block_end: int = 0  # offset in the text where the body starts


@dataclass
class ParsedNote:
    text: str
    yaml: str | None
    metadata: dict
    body: str
    encoding: str
    has_bom: bool
    newline: str
    title: str = ""
    tags: list[str] = field(default_factory=list)


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


BOMS = {
    "utf-8": codecs.BOM_UTF8,
    "utf-16-le": codecs.BOM_UTF16_LE,
    "utf-16-be": codecs.BOM_UTF16_BE,
}


def bom_codec(data: bytes) -> tuple[bytes, str]:
    """The file's byte-order mark (b"" if none) and the codec of the text after it."""
    for codec, bom in BOMS.items():
        if data.startswith(bom):
            return bom, codec
    return b"", "utf-8"


def decode(data: bytes) -> tuple[str, str, bool]:
    """Return (text, encoding, has_bom); raise NoteError for binary or undecodable bytes."""
    # The encoding names the codec for the text after the BOM, so the exporter writes the
    # same BOM back and then `text.encode(encoding)`: UTF-16 keeps its byte order.
    bom, encoding = bom_codec(data)
    payload = data[len(bom) :]
    # The whole file, not a prefix: PostgreSQL refuses text holding a NUL character.
    if not bom and b"\x00" in data:
        raise NoteError("binary file (contains NUL bytes), not a markdown note")
    try:
        text = payload.decode(encoding)
    except UnicodeDecodeError as exc:
        offset = exc.start + (len(data) - len(payload))
        raise NoteError(
            f"not valid {encoding.upper()}: byte 0x{payload[exc.start]:02x} at offset {offset}"
        ) from None
    if "\x00" in text:
        raise NoteError("binary file (contains NUL characters), not a markdown note")
    return text, encoding, bool(bom)


def encode(text: str, *, encoding: str, has_bom: bool) -> bytes:
    """The inverse of `decode`: the bytes of `text` as the file stored them."""
    return (BOMS.get(encoding, b"") if has_bom else b"") + text.encode(encoding)


def detect_newline(text: str) -> str:
    first = text.find("\n")
    return "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"


def split(text: str) -> Split:
    match = FRONTMATTER_RE.match(text)
    if match is None:
        return Split(yaml=None, body=text, block_end=0)
    return Split(yaml=match.group("yaml"), body=text[match.end() :], block_end=match.end())


def load_yaml(source: str) -> dict:
    """Parse frontmatter YAML into a dict; NoteError says why when it cannot."""
    try:
        data = _YAML.load(source, Loader=YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise NoteError(f"invalid YAML frontmatter{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise NoteError(f"frontmatter is a {type(data).__name__}, not a mapping of keys to values")
    budget = [MAX_FRONTMATTER_VALUES]
    try:
        return jsonable(data, budget=budget)
    except RecursionError:  # a self-referencing alias; depth itself is limited in jsonable
        raise NoteError("frontmatter nests too deeply (or refers to itself)") from None


def jsonable(value, *, budget: list[int] | None = None, depth: int = 0):
    """YAML values (dates, sets, non-string keys, NaN) as JSON columns can store them."""
    if budget is not None:
        budget[0] -= 1
        if budget[0] < 0:
            raise NoteError(
                f"frontmatter too large: more than {MAX_FRONTMATTER_VALUES:,} values "
                "(YAML aliases expanding?)"
            )
        if depth > MAX_FRONTMATTER_DEPTH:
            raise NoteError(f"frontmatter nests deeper than {MAX_FRONTMATTER_DEPTH} levels")
    if type(value) is str:  # by far the most common: checked first
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {str(k): jsonable(v, budget=budget, depth=depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v, budget=budget, depth=depth + 1) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or infinity; PostgreSQL's jsonb rejects them
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if value is None or isinstance(value, (int, float, bool)):
        return value
    return str(value)


def tag_keys(metadata: dict) -> list[str]:
    """The keys that hold a note's tags: `tags`, then Obsidian's older `tag` and either
    written in another case (`Tags:`), in the order the note has them."""
    found = [key for key in metadata if isinstance(key, str) and key.lower() in ("tags", "tag")]
    return sorted(found, key=lambda key: key != "tags")


def tags_from(metadata: dict) -> list[str]:
    """The note's own tags, as a list, whether written as a list or a string, from every key
    that holds tags (see tag_keys); no `#`."""
    seen: dict[str, None] = {}
    for key in tag_keys(metadata):
        raw = metadata[key]
        if raw is None:
            continue
        if isinstance(raw, str):
            raw = re.split(r"[,\s]+", raw)
        elif not isinstance(raw, list):
            raw = [raw]
        for tag in raw:
            cleaned = tag_clean(tag) if tag is not None else ""
            if cleaned:
                seen.setdefault(cleaned, None)
    return list(seen)


def title_from(metadata: dict, path: str, body: str) -> str:
    title = metadata.get("title")
    if isinstance(title, str) and title.strip():
        return title.strip()
    return link_name(path)


def parse(data: bytes, *, path: str) -> ParsedNote:
    """Decode and parse one note file's bytes; NoteError carries the reason it is unusable."""
    text, encoding, bom = decode(data)
    if not text.strip():  # after decoding: a lone BOM or UTF-16 spaces are empty too
        raise NoteError("empty file")
    if "\r" in text and "\n" not in text:  # its frontmatter would not be found, and export
        raise NoteError(  # would add a second block with other line breaks
            "line breaks are CR only (classic Mac OS); convert the note to LF or CRLF to curate it"
        )
    parts = split(text)
    metadata = load_yaml(parts.yaml) if parts.yaml is not None else {}
    if parts.yaml is not None and not parts.body.strip():
        raise NoteError("frontmatter only: the note has no body to curate")
    return ParsedNote(
        text=text,
        yaml=parts.yaml,
        metadata=metadata,
        body=parts.body,
        encoding=encoding,
        has_bom=bom,
        newline=detect_newline(text),
        title=title_from(metadata, path, parts.body),
        tags=tags_from(metadata),
    )


class NotRegular(OSError):
    """The path is a FIFO, socket, device or folder: never read as a note."""


_KINDS = {
    stat.S_IFIFO: "a named pipe",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
    stat.S_IFDIR: "a folder",
}


def not_regular_reason(mode: int) -> str | None:
    """Why a file of this st_mode is never read as a note; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return f"not a regular file ({_KINDS.get(stat.S_IFMT(mode), 'a special file')})"


def read_regular(path: str, *, limit: int, max_bytes: int | None = None) -> bytes:
    """The bytes of the regular file at `path`, never blocking: NotRegular for anything else.

    Opened with O_NONBLOCK, so a FIFO swapped in after a stat() cannot make the open wait for
    a writer, then checked with fstat() on the open descriptor (what is read is what was
    checked). Reads `limit` bytes, then, if the file filled them, on up to `max_bytes` + 1.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        reason = not_regular_reason(os.fstat(fd).st_mode)
        if reason:
            raise NotRegular(reason)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(limit)
            if max_bytes is not None and len(data) == limit and limit <= max_bytes:
                data += fh.read(max_bytes + 1 - len(data))  # it grew since it was measured
        return data
    finally:
        os.close(fd)


@dataclass
class ReadResult:
    """What reading one file found: "ok" (parsed), "same" (hash unchanged) or "bad" (reason)."""

    kind: str
    digest: str = ""
    reason: str = ""
    note: ParsedNote | None = None


def read_file(
    path: str, *, rel: str, max_bytes: int, known_digest: str | None, size: int = -1
) -> ReadResult:
    """Read, hash and parse one note file (never writing it).

    `size` is what stat() said: reading exactly that much (plus one byte, to notice growth)
    avoids allocating a `max_bytes` buffer for every small note.
    """
    try:
        data = read_regular(path, limit=min(size, max_bytes) + 1 if size >= 0 else max_bytes + 1,
                            max_bytes=max_bytes)  # fmt: skip
    except NotRegular as exc:
        return ReadResult("bad", reason=str(exc))
    except OSError as exc:
        return ReadResult("bad", reason=f"cannot read: {exc.strerror or exc}")
    if len(data) > max_bytes:  # grew after it was measured
        reason = f"too large: over {max_bytes:,} bytes (limit {max_bytes:,})"
        return ReadResult("bad", reason=reason)
    digest = content_hash(data)
    if digest == known_digest:
        return ReadResult("same", digest)
    try:
        parsed = parse(data, path=rel)
    except NoteError as exc:  # `date: {{date}}` is no YAML until the template is filled in
        marker = template_marker(split(data.decode("utf-8", "replace")).yaml or "")
        return ReadResult("bad", digest, template_reason(f"{marker} in its text") if marker
                          else str(exc))  # fmt: skip
    parsed.text = ""  # yaml and body are kept; don't carry the text twice
    marker = template_marker((parsed.yaml or "") + "\n" + parsed.body)
    if marker:
        return ReadResult("bad", digest, template_reason(f"{marker} in its text"))
    return ReadResult("ok", digest, note=parsed)


# What only a template holds: a Templater command (`<% tp.date.now() %>`, `<%* ... %>`) or one
# of the Templates plugin's variables (`{{date}}`, `{{time:HH:mm}}`, `{{title}}`), outside code.
TEMPLATE = re.compile(r"<%[*_-]?\s*tp\.|<%\*|\{\{(?:date|time|title)(?::[^{}\n]*)?\}\}")


def template_reason(why: str) -> str:
    """Why a template is skipped at import, `why` saying how it was known."""
    return f"a template ({why}): not curated, so the notes made from it do not inherit its tags"


def template_marker(text: str) -> str:
    """The first template command or variable in the text, outside code ("" if none)."""
    found = TEMPLATE.search(CODE.sub(" ", text))
    return found.group(0) if found else ""
