"""The writer, property-based: generated frontmatter keeps every byte outside the curated keys.

Frontmatter is generated in the styles vaults use (block and flow lists, comments, quoting
styles, nested maps, block scalars, CRLF, a BOM, decomposed (NFD) names, one line of JSON),
curated changes are applied with `rewrite`, and the result is checked by means written apart
from the writer: the text with the curated entries cut out is unchanged, the body is the same
bytes, the curated values read back, every other key reads back equal.
"""

import codecs
import json
import re
import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest import notes
from ingest.writer import Changes, Link, rewrite

KEYS = ["title", "aliases", "created", "author", "status", "cssclasses", "publish", "source"]
WORDS = ["alpha", "Beta", "gamma delta", "café", unicodedata.normalize("NFD", "café"),
         "한국어", unicodedata.normalize("NFD", "한국어 노트"), "Жук", "東京"]  # fmt: skip
QUOTABLE = WORDS + ["a: b", "x # y", "[not a list]", "it's", 'say "hi"', "yes", "123"]
TAGS = ["ai/agents", "new", "Ünïcode", unicodedata.normalize("NFD", "한국어/태그"), "#hash"]
NAMES = ["Target", unicodedata.normalize("NFD", "서울 여행"), "Über Notes", "東京 ラーメン"]
CURATED_START = re.compile(r"(tags|description|related)[ \t]*:")


def single(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def double(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


@st.composite
def scalars(draw) -> str:
    style = draw(st.sampled_from(["plain", "single", "double"]))
    if style == "plain":
        return draw(st.sampled_from(WORDS))
    text = draw(st.sampled_from(QUOTABLE))
    return single(text) if style == "single" else double(text)


@st.composite
def other_entry(draw, key: str) -> list[str]:
    """The lines of one non-curated key, in one of the styles people write."""
    kind = draw(st.sampled_from(["scalar", "flow", "block", "nested", "literal", "empty"]))
    indent = draw(st.sampled_from(["  ", "    ", ""]))
    items = draw(st.lists(scalars(), min_size=1, max_size=3))
    comment = draw(st.sampled_from(["", "  # a comment"]))
    if kind == "scalar":
        return [f"{key}: {items[0]}{comment}"]
    if kind == "flow":
        return [f"{key}: [{', '.join(items)}]{comment}"]
    if kind == "block":
        return [f"{key}:{comment}"] + [f"{indent}- {i}" for i in items]
    if kind == "nested":
        inner = indent or "  "
        return [f"{key}:"] + [f"{inner}k{n}: {i}" for n, i in enumerate(items)]
    if kind == "literal":
        inner = indent or "  "
        return [f"{key}: |"] + [f"{inner}line {n} {draw(st.sampled_from(WORDS))}" for n in
                                range(len(items))]  # fmt: skip
    return [f"{key}:"]


@st.composite
def curated_entries(draw) -> list[list[str]]:
    found = []
    tags = draw(st.sampled_from(["absent", "flow", "block", "string", "empty"]))
    own = draw(st.lists(st.sampled_from(["mine", "Project/x", "café"]), min_size=1, max_size=2,
                        unique=True))  # fmt: skip
    if tags == "flow":
        found.append([f"tags: [{', '.join(own)}]"])
    elif tags == "block":
        found.append(["tags:"] + [f"  - {t}" for t in own])
    elif tags == "string":
        found.append([f"tags: {', '.join(own)}"])
    elif tags == "empty":
        found.append(["tags:"])
    description = draw(st.sampled_from(["absent", "plain", "double", "single"]))
    if description == "plain":
        found.append(["description: an old line"])
    elif description != "absent":
        found.append([f"description: {single('old: one') if description == 'single' else double('old: one')}"])  # noqa: E501
    if draw(st.booleans()):
        found.append(["related:", '  - "[[Elsewhere]]"'])
    return found


@st.composite
def block_notes(draw) -> tuple[bytes, str]:
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=0, max_size=5, unique=True))
    entries = [draw(other_entry(k)) for k in keys]
    entries += draw(curated_entries())
    if draw(st.booleans()):
        entries.append(["# a comment line"])
    entries = draw(st.permutations(entries))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    closer = draw(st.sampled_from(["---", "..."]))
    yaml_lines = [line for entry in entries for line in entry]
    body = draw(st.sampled_from(["Body.\n", "# Title\n\nText with [[Target]] link.\n", "x"]))
    text = newline.join(["---", *yaml_lines, closer, ""]) + body.replace("\n", newline)
    bom = codecs.BOM_UTF8 if draw(st.booleans()) else b""
    return bom + text.encode("utf-8"), newline


@st.composite
def json_notes(draw) -> bytes:
    keys = draw(st.lists(st.sampled_from(KEYS + ["tags", "description", "related"]),
                         min_size=0, max_size=5, unique=True))  # fmt: skip
    values = {}
    for key in keys:
        if key == "tags":
            values[key] = draw(st.lists(st.sampled_from(["mine", "café"]), max_size=2))
        elif key == "related":
            values[key] = ["[[Elsewhere]]"]
        elif draw(st.booleans()):
            values[key] = draw(st.sampled_from(QUOTABLE))
        else:
            values[key] = draw(st.lists(st.sampled_from(QUOTABLE), max_size=2))
    return ("---\n" + json.dumps(values, ensure_ascii=False) + "\n---\nBody.\n").encode()


@st.composite
def changes(draw) -> Changes:
    return Changes(
        add_tags=draw(st.lists(st.sampled_from(TAGS), max_size=3, unique=True)),
        description=draw(st.sampled_from([None, "A summary: with a colon, and “quotes”",
                                          "Plain words", unicodedata.normalize("NFD", "요약")])),
        add_related=[Link(name=n, target=f"folder/{n}")
                     for n in draw(st.lists(st.sampled_from(NAMES), max_size=2, unique=True))],
    )  # fmt: skip


def without_curated(yaml_text: str) -> str:
    """The frontmatter lines with each curated key's entry cut out (its key line and the
    indented, blank or `- ` lines after it), written apart from the writer."""
    out, inside = [], False
    for line in yaml_text.splitlines(keepends=True):
        if CURATED_START.match(line):
            inside = True
        elif inside and (not line.strip() or line[0] in " \t" or re.match(r"-( |\r?\n)", line)):
            pass
        else:
            inside = False
            out.append(line)
    return "".join(out)


def key(text) -> str:
    return unicodedata.normalize("NFC", str(text)).casefold()


def check_curated(meta: dict, change: Changes, body: str) -> None:
    got = {key(t) for t in notes.tags_from(meta)}
    assert all(key(t.lstrip("#")) in got for t in change.add_tags)
    if change.description:
        assert meta["description"] == change.description
    in_body = {key(t) for t in notes.body_links(body)}  # the author's own: not repeated
    wanted = [link for link in change.add_related if key(link.name) not in in_body]
    if wanted:
        related = {key(str(r).strip("[]")) for r in meta["related"]}
        assert all(key(link.name) in related for link in wanted)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(block_notes(), changes())
def test_block_frontmatter_round_trips_outside_the_curated_keys(note, change):
    data, newline = note
    new = rewrite(data, change).data
    bom = codecs.BOM_UTF8 if data.startswith(codecs.BOM_UTF8) else b""
    assert new.startswith(bom) and not new[len(bom) :].startswith(codecs.BOM_UTF8)
    old_text, new_text = data[len(bom) :].decode(), new[len(bom) :].decode()
    old, fresh = notes.split(old_text), notes.split(new_text)
    assert fresh.body == old.body  # the body, and its bytes, untouched
    assert new.endswith(old.body.encode())
    assert without_curated(fresh.yaml) == without_curated(old.yaml)
    if newline == "\r\n":
        assert "\n" not in new_text.replace("\r\n", "")
    old_meta, new_meta = notes.load_yaml(old.yaml), notes.load_yaml(fresh.yaml)
    assert {k: v for k, v in new_meta.items() if k not in notes.CURATED_FIELDS} == {
        k: v for k, v in old_meta.items() if k not in notes.CURATED_FIELDS
    }
    check_curated(new_meta, change, fresh.body)


@settings(max_examples=200, deadline=None)
@given(json_notes(), changes())
def test_json_frontmatter_stays_one_line_of_json(data, change):
    new = rewrite(data, change).data.decode()
    old_line, new_line = data.decode().split("\n")[1], new.split("\n")[1]
    assert new.split("\n")[2:] == data.decode().split("\n")[2:]
    old_values, new_values = json.loads(old_line), json.loads(new_line)  # still JSON
    assert [(k, v) for k, v in new_values.items() if k not in notes.CURATED_FIELDS] == [
        (k, v) for k, v in old_values.items() if k not in notes.CURATED_FIELDS
    ]
    curated = [old_line.find(f'"{k}": ') for k in notes.CURATED_FIELDS if k in old_values]
    kept = min(curated) if curated else len(old_line) - 1
    assert new_line[:kept] == old_line[:kept]  # every byte before the first curated key
    check_curated(new_values, change, "")
