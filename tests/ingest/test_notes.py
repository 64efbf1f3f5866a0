"""ingest.notes: decoding, splitting and parsing one note's bytes, and each reason it can fail."""

import codecs
import unicodedata

import pytest

from ingest import notes
from ingest.notes import NoteError


def parse(data: bytes | str, path: str = "n.md") -> notes.ParsedNote:
    return notes.parse(data.encode("utf-8") if isinstance(data, str) else data, path=path)


def reason(data: bytes | str) -> str:
    with pytest.raises(NoteError) as info:
        parse(data)
    return str(info.value)


def test_flow_block_and_string_tags_hashes_and_hierarchy():
    assert parse("---\ntags: [AI, python]\n---\nx\n").tags == ["AI", "python"]
    assert parse("---\ntags:\n  - ai/agents\n  - '#tool-use'\n---\nx\n").tags == [
        "ai/agents",
        "tool-use",
    ]
    assert parse("---\ntags: ai, search  #comment\n---\nx\n").tags == ["ai", "search"]
    assert parse("---\ntag: solo\n---\nx\n").tags == ["solo"]
    assert parse("no frontmatter\n").tags == []


def test_dates_nested_keys_and_comments_become_json():
    note = parse(
        "---\n# a comment\ncreated: 2024-03-12\ntrip:\n  start: 2025-11-15T08:30:00\n"
        "  with: [a, b]\n1: numeric key\n---\nbody\n"
    )
    assert note.metadata == {
        "created": "2024-03-12",
        "trip": {"start": "2025-11-15T08:30:00", "with": ["a", "b"]},
        "1": "numeric key",
    }
    assert note.yaml.startswith("# a comment\n")


def test_body_is_everything_after_the_closing_line_byte_for_byte():
    text = "---\r\ntitle: T\r\n---\r\n\r\n# Head\r\nline  \r\n"
    note = parse(text)
    assert note.body == "\r\n# Head\r\nline  \r\n"
    assert note.newline == "\r\n" and note.title == "T"
    assert notes.split(text).block_end == len(text) - len(note.body)


def test_a_leading_horizontal_rule_without_closing_line_is_body():
    note = parse("---\nnot frontmatter, just a rule above text\n")
    assert note.yaml is None and note.metadata == {}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("---\ntitle: [unclosed\n---\nbody\n", "invalid YAML frontmatter at line 3"),
        ("---\n- a\n- b\n---\nbody\n", "frontmatter is a list, not a mapping"),
        ("---\njust a string\n---\nbody\n", "frontmatter is a str, not a mapping"),
        ("caf\xe9 au lait\n".encode("latin-1"), "not valid UTF-8: byte 0xe9 at offset 3"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        (b"A" * 10_000 + b"\x00tail", "binary file"),  # NUL far past any sniffed prefix
        (b"", "empty file"),
        (b"  \n\t\n", "empty file"),
        (codecs.BOM_UTF8, "empty file"),
        (codecs.BOM_UTF16_LE + " \n".encode("utf-16-le"), "empty file"),
        ("---\ntitle: x\n---\n", "frontmatter only"),
        ("---\ntitle: x\n---\n\n  \n", "frontmatter only"),
        ("---\n---\n", "frontmatter only"),
    ],
)
def test_bad_input_reasons(data, expected):
    assert expected in reason(data)


def test_utf16_with_bom_keeps_its_byte_order_and_round_trips():
    text = "---\ntitle: Über\n---\n日本語 body\n"
    for codec, bom in (("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE)):
        data = bom + text.encode(codec)
        note = parse(data)
        assert (note.encoding, note.has_bom, note.title) == (codec, True, "Über")
        assert note.body == "日本語 body\n"
        assert notes.encode(note.text, encoding=note.encoding, has_bom=note.has_bom) == data


def test_utf8_bom_is_remembered_and_round_trips():
    data = codecs.BOM_UTF8 + b"---\ntitle: x\n---\nbody\n"
    note = parse(data)
    assert (note.encoding, note.has_bom, note.metadata) == ("utf-8", True, {"title": "x"})
    assert notes.encode(note.text, encoding="utf-8", has_bom=True) == data


def test_values_json_cannot_hold_are_made_safe():
    note = parse('---\nratio: .nan\nbig: .inf\ntitle: "a\\0b"\nset: !!set {x: null}\n---\nx\n')
    assert note.metadata["ratio"] == "nan" and note.metadata["big"] == "inf"
    assert "\x00" not in note.metadata["title"] and note.title == "a\ufffdb"
    assert note.metadata["set"] == ["x"]


def test_alias_bomb_and_self_reference_are_refused_not_expanded():
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in "bcdefgh":
        prev = chr(ord(level) - 1)
        bomb.append(f"{level}: &{level} [" + ", ".join([f"*{prev}"] * 10) + "]")
    assert "frontmatter too large" in reason("---\n" + "\n".join(bomb) + "\n---\nbody\n")
    assert "frontmatter" in reason("---\nloop: &l [*l]\n---\nbody\n")


def test_title_falls_back_to_the_file_name():
    assert parse("x\n", path="Travel/東京 ラーメン.md").title == "東京 ラーメン"
    assert parse("---\ntitle: 42\n---\nx\n", path="a/b.md").title == "b"


@pytest.mark.parametrize("written", ["crème/Randonnée", "김치/찌개"])
def test_a_suggested_tag_is_composed_however_its_letters_came(written):
    composed = notes.tag_normalize(unicodedata.normalize("NFC", written))
    assert notes.tag_normalize(unicodedata.normalize("NFD", written)) == composed
    assert composed == unicodedata.normalize("NFC", written.lower())


def test_a_note_with_classic_mac_line_breaks_is_refused_with_its_reason():
    """CR-only line breaks: its frontmatter would not be found, and export would add a block
    of another line break above it. CRLF and LF notes are read as ever."""
    with pytest.raises(NoteError, match="CR only"):
        notes.parse(b"---\rtitle: Old Mac note\r---\rHiking boots.\r", path="m.md")
    crlf = notes.parse(b"---\r\ntitle: T\r\n---\r\nHiking boots.\r\n", path="w.md")
    assert crlf.metadata == {"title": "T"} and crlf.newline == "\r\n"
    assert notes.parse(b"One line, no break", path="x.md").body == "One line, no break"
