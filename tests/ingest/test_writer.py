"""The pure writer: bytes + changes -> bytes, for the cases the corpus does not spell out."""

import codecs

import pytest

from ingest import notes
from ingest.writer import Changes, ExportError, Link, link_names, render_scalar, rewrite


def new(text: str, **changes) -> str:
    return rewrite(text.encode("utf-8"), Changes(**changes)).data.decode("utf-8")


def test_no_changes_returns_the_same_bytes():
    data = b"---\ntitle: x\n---\nbody\n"
    assert rewrite(data, Changes()).data is data
    assert rewrite(data, Changes(add_tags=["#", " "])).data == data


def test_tags_already_present_in_any_case_or_with_hash_change_nothing():
    text = '---\ntags: ["#AI/Agents", python]\n---\nbody\n'
    assert new(text, add_tags=["ai/agents", "#Python", "PYTHON"]) == text


def test_flow_list_spanning_lines_gets_items_after_the_last_one():
    text = "---\ntags: [\n  a,\n  b\n]\nx: 1\n---\nbody\n"
    assert new(text, add_tags=["c"]) == "---\ntags: [\n  a,\n  b, c\n]\nx: 1\n---\nbody\n"


def test_tags_needing_quotes_are_quoted():
    out = new("---\ntags: [a]\n---\nb\n", add_tags=["yes", "2024", "a,b", "x: y"])
    assert 'tags: [a, "yes", "2024", "a,b", "x: y"]' in out
    assert notes.parse(out.encode(), path="n").tags == ["a", "yes", "2024", "a,b", "x: y"]


def test_single_string_untouched_when_the_tag_is_already_there():
    text = "---\ntags: journal\n---\nb\n"
    assert new(text, add_tags=["Journal"]) == text


def test_empty_tags_with_comment_becomes_a_list_below_it():
    out = new("---\ntags: # to fill\nx: 1\n---\nb\n", add_tags=["a"])
    assert out == "---\ntags: # to fill\n  - a\nx: 1\n---\nb\n"


def test_block_list_rename_keeps_quotes_and_comment():
    text = "---\ntags:\n  - 'old/x'  # note\n  - keep\n---\nb\n"
    out = new(text, tag_renames=[("old", "new")])
    assert out == "---\ntags:\n  - 'new/x'  # note\n  - keep\n---\nb\n"


def test_removing_every_tag_leaves_an_empty_list():
    assert new("---\ntags:\n  - gone\n---\nb\n", tag_renames=[("gone", "")]) == (
        "---\ntags: []\n---\nb\n"
    )
    out = new("---\ntags: [gone]\n---\nb\n", tag_renames=[("gone", "")])
    assert out == "---\ntags: []\n---\nb\n"


def test_description_keeps_its_quote_style_and_inline_comment():
    out = new("---\ndescription: 'old' # why\n---\nb\n", description="it's new")
    assert out == "---\ndescription: 'it''s new' # why\n---\nb\n"
    out = new('---\ndescription: "old"\n---\nb\n', description='say "hi"\nnow')
    assert out == '---\ndescription: "say \\"hi\\" now"\n---\nb\n'


def test_description_equal_to_the_current_one_writes_nothing():
    text = "---\ndescription: Same text\n---\nb\n"
    assert new(text, description="Same text") == text


def test_empty_description_key_is_filled_in_place():
    assert new("---\ndescription:\nx: 1\n---\nb\n", description="d") == (
        "---\ndescription: d\nx: 1\n---\nb\n"
    )


def test_indented_root_mapping_gets_keys_at_its_indent():
    out = new("---\n  title: x\n---\nb\n", add_tags=["a"])
    assert out == "---\n  title: x\n  tags:\n    - a\n---\nb\n"
    assert notes.parse(out.encode(), path="n").tags == ["a"]


def test_related_nested_list_items_are_recognised():
    text = "---\nrelated:\n  - [[B]]\n---\nb\n"
    assert new(text, add_related=[Link("B", "x/B")]) == text
    out = new(text, add_related=[Link("C", "C")])
    assert out == '---\nrelated:\n  - [[B]]\n  - "[[C]]"\n---\nb\n'


def test_related_link_names_with_quotes_are_escaped():
    out = new("b\n", add_related=[Link('Say "hi"', 'Say "hi"')])
    assert notes.parse(out.encode(), path="n").metadata["related"] == ['[[Say "hi"]]']


def test_duplicate_curated_key_is_refused():
    with pytest.raises(ExportError, match="appears twice"):
        rewrite(b"---\ntags: [a]\ntags: [b]\n---\nb\n", Changes(add_tags=["c"]))


def test_an_explicit_curated_key_is_refused_with_its_reason():
    data = b"---\n? tags\n: [ml]\ntitle: t\n---\nb\n"
    with pytest.raises(ExportError, match=r"^`tags` is an explicit key"):
        rewrite(data, Changes(add_tags=["c"]))


def test_anchored_description_used_elsewhere_is_refused_not_broken():
    data = b"---\ndescription: &d old\nsame: *d\n---\nb\n"
    with pytest.raises(ExportError, match=r"^`description` carries an anchor"):
        rewrite(data, Changes(description="new"))
    data = b"---\ntags: &t [finance]\nkeywords: *t\n---\nb\n"
    with pytest.raises(ExportError, match=r"^`tags` carries an anchor \(&t\) that another key"):
        rewrite(data, Changes(add_tags=["x"]))
    # An anchor nothing repeats is only a name: the key is edited.
    out = new("---\ntags: &t [finance]\n---\nb\n", add_tags=["x"])
    assert out == "---\ntags: &t [finance, x]\n---\nb\n"


def test_utf16_with_a_second_bom_keeps_every_byte_after_the_first():
    data = codecs.BOM_UTF16_LE + "\ufeff---\ntags: [a]\n---\nb\n".encode("utf-16-le")
    out = rewrite(data, Changes(add_tags=["c"])).data
    assert out.startswith(codecs.BOM_UTF16_LE) and out.endswith("b\n".encode("utf-16-le"))
    assert "c" in notes.parse(out, path="n").tags
    text, _, _ = notes.decode(data)
    if notes.split(text).yaml is None:  # the decoder keeps the inner BOM: a block is added
        assert out.endswith(data[2:])


def test_mixed_newlines_keep_the_body_bytes():
    data = b"---\r\ntags: [a]\r\n---\r\nline\nother\r\n"
    out = rewrite(data, Changes(add_tags=["b"], description="d")).data
    assert out == b"---\r\ntags: [a, b]\r\ndescription: d\r\n---\r\nline\nother\r\n"


def test_link_names_are_the_shortest_unambiguous_suffix():
    names = link_names(["a/Note.md", "b/Note.md", "c/d/Note.md", "Solo.md", "x/y/Deep.md"])
    assert names == {
        "a/Note.md": "a/Note",
        "b/Note.md": "b/Note",
        "c/d/Note.md": "d/Note",
        "Solo.md": "Solo",
        "x/y/Deep.md": "Deep",
    }
    assert link_names(["Note.md", "sub/note.md"]) == {"Note.md": "Note", "sub/note.md": "sub/note"}


SCALARS = ["ai/agents", "x y", "yes", "No", "~", "a: b", "#x", "-", "", "café", "1.0", "@x",
           "`x`", "a\\b", "tab\there", "\u2028", 'say "hi" 🎵', "🎵 \\ ✓"]  # fmt: skip


@pytest.mark.parametrize("value", SCALARS)
def test_rendered_scalars_read_back_as_the_same_string(value):
    for kwargs in ({}, {"flow": True}, {"style": '"'}, {"style": "'"}):
        text = render_scalar(value, **kwargs)
        wrapped = f"k: [{text}]" if kwargs.get("flow") else f"k: {text}"
        loaded = notes.load_yaml(wrapped)["k"]
        assert (loaded[0] if kwargs.get("flow") else loaded) == value, (value, kwargs, text)


def test_emoji_in_a_quoted_value_are_written_as_themselves_not_escaped():
    """PyYAML writes `\U0001F3B5` for 🎵 in double quotes; a person reading the note in
    Obsidian's source view would see that."""
    out = rewrite(b"---\ntitle: x\n---\nbody\n", Changes(description='"Own" tune 🎵'))
    assert out.data.decode() == '---\ntitle: x\ndescription: "\\"Own\\" tune 🎵"\n---\nbody\n'


def test_curated_key_that_is_an_alias_is_refused():
    with pytest.raises(ExportError, match="alias"):
        rewrite(b"---\nmine: &t [a]\ntags: *t\n---\nb\n", Changes(add_tags=["c"]))


def test_older_tag_key_is_left_alone_and_not_duplicated():
    text = "---\ntag: [Old, other]\n---\nb\n"
    assert new(text, add_tags=["old"]) == text
    assert new(text, add_tags=["old", "x"]) == "---\ntag: [Old, other]\ntags:\n  - x\n---\nb\n"


def test_user_duplicates_in_a_tag_string_are_kept_when_it_becomes_a_list():
    out = new("---\ntags: AI ai\n---\nb\n", add_tags=["x"])
    assert out == "---\ntags:\n  - AI\n  - ai\n  - x\n---\nb\n"
