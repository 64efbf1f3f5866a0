"""Export over a corpus of real-world frontmatter styles, checked byte for byte.

For every corpus note: approved tags, a description and a related link are exported; then
the file must parse, the curated keys must hold the expected values, and the file with the
curated keys' lines removed must equal the original with the same lines removed (the check
below is written independently of the exporter). Encoding, BOM and line endings are kept.
"""

import codecs
import re
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from curation.models import Job
from curation.review.export import vault_export
from ingest import notes
from ingest.importer import vault_import
from ingest.models import ExportRecord, Note
from tests.ingest.export_factory import approve_description, approve_related, approve_tags

pytestmark = pytest.mark.django_db

CORPUS = Path(__file__).resolve().parents[2] / "ingest" / "corpus"
CORPUS_NOTES = sorted(p.name for p in CORPUS.glob("*.md") if p.name != "Target note.md")
ADD_TAGS = ["ai/agents", "PROJECT", "#new-tag"]
DESCRIPTION = "A one-line summary: with a colon, and “quotes”"

CURATED_START = re.compile(r"(tags|description|related)[ \t]*:")
FENCE_OPEN = re.compile(r"---[ \t]*\r?\n")
FENCE_CLOSE = re.compile(r"(---|\.\.\.)[ \t]*(\r?\n)?")


def without_curated(text: str) -> str:
    """The text with the lines of top-level tags/description/related entries removed.

    An entry is its key line plus every following line that is blank, indented, or a `- `
    item at column 0; a comment or key at column 0 ends it. Only the first block is touched.
    """
    lines = text.splitlines(keepends=True)
    if not lines or not FENCE_OPEN.fullmatch(lines[0]):
        return text
    out = [lines[0]]
    inside, index = False, 1
    while index < len(lines):
        line = lines[index]
        if FENCE_CLOSE.fullmatch(line):
            out.extend(lines[index:])
            return "".join(out)
        if CURATED_START.match(line):
            inside = True
        elif inside and (not line.strip() or line[0] in " \t" or re.match(r"-( |\r?\n)", line)):
            pass
        else:
            inside = False
            out.append(line)
        index += 1
    return "".join(out)


def codec_of(data: bytes) -> tuple[bytes, str]:
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            return bom, codec
    return b"", "utf-8"


def expected_tags(own: list[str], legacy: list[str] = ()) -> list[str]:
    result, seen = list(own), {t.lower() for t in [*own, *legacy]}
    for tag in ADD_TAGS:
        tag = tag.lstrip("#")
        if tag.lower() not in seen:
            seen.add(tag.lower())
            result.append(tag)
    return result


@pytest.fixture(scope="module")
def exported(django_db_setup, django_db_blocker, tmp_path_factory):
    """The corpus copied into a vault, imported, every note approved and exported once.

    Built once for the module (the export is the slow part) and deleted afterwards; the tests
    only read it, or change it inside their own rolled-back transaction.
    """
    root = tmp_path_factory.mktemp("corpus") / "vault"
    shutil.copytree(CORPUS, root, ignore=shutil.ignore_patterns(".gitattributes"))
    before = {p.name: p.read_bytes() for p in root.glob("*.md")}
    with django_db_blocker.unblock():
        vault, summary = vault_import(root=root, name="corpus")
        try:
            assert not summary.skipped, summary.skipped
            for note in Note.objects.filter(vault=vault).exclude(path="Target note.md"):
                approve_tags(note, ADD_TAGS)
                approve_description(note, DESCRIPTION)
                approve_related(note, ["Target note.md"])
            summary = vault_export(vault=vault)
            after = {p.name: p.read_bytes() for p in root.glob("*.md")}
            yield {"root": root, "vault": vault, "before": before, "after": after,
                   "summary": summary}
        finally:
            Job.objects.filter(vault=vault).delete()
            vault.delete()


def test_every_corpus_note_was_written(exported):
    assert exported["summary"].ok, exported["summary"].conflicts + exported["summary"].errors
    assert sorted(exported["summary"].written) == sorted(CORPUS_NOTES + ["Target note.md"])
    assert ExportRecord.objects.count() == len(CORPUS_NOTES) + 1
    assert not list(exported["root"].glob(".*export-tmp")), "temp files left behind"


@pytest.mark.parametrize("name", CORPUS_NOTES)
def test_corpus_note_changes_only_curated_keys(exported, name):
    old_data, new_data = exported["before"][name], exported["after"][name]
    bom, codec = codec_of(old_data)
    assert new_data.startswith(bom) and codec_of(new_data) == (bom, codec)
    old_text = old_data[len(bom) :].decode(codec)
    new_text = new_data[len(bom) :].decode(codec)

    # The body after the frontmatter: the same bytes, at the end of the file.
    old_split, new_split = notes.split(old_text), notes.split(new_text)
    assert new_split.body == old_split.body
    assert new_data.endswith(old_split.body.encode(codec))

    # Every byte outside the curated keys is as it was.
    newline = notes.detect_newline(old_text)
    if old_split.yaml is None:
        assert new_text.endswith(old_text)
        assert without_curated(new_text) == f"---{newline}---{newline}" + old_text
    else:
        assert without_curated(new_text) == without_curated(old_text)

    # The frontmatter lines use the file's own line ending, and nothing else was re-encoded.
    head = new_text[: len(new_text) - len(new_split.body)]
    if newline == "\r\n":
        assert "\n" not in head.replace("\r\n", "")
    else:
        assert "\r" not in head

    # It parses, and the curated keys hold what was approved, merged with the user's own.
    parsed = notes.parse(new_data, path=name)
    old_meta = notes.parse(old_data, path=name).metadata
    if "tags" in old_meta or "tag" not in old_meta:
        assert parsed.tags == expected_tags(notes.tags_from(old_meta))
    else:  # only the older `tag` key: it stays, and `tags` gets what it does not hold
        assert parsed.metadata["tag"] == old_meta["tag"]
        legacy = notes.tags_from(old_meta)  # read with the new ones: the note keeps them
        assert parsed.tags == expected_tags([], legacy) + legacy
    assert parsed.metadata["description"] == DESCRIPTION
    related = parsed.metadata["related"]
    assert isinstance(related, list)
    assert "[[Target note]]" in related or "[[Target note]]" in (old_meta.get("related") or [])
    for key, value in old_meta.items():
        if key not in ("tags", "description", "related"):
            assert parsed.metadata[key] == value


def test_target_note_gets_every_reverse_link(exported):
    data = exported["after"]["Target note.md"]
    parsed = notes.parse(data, path="Target note.md")
    expected = [f"[[{name[:-3]}]]" for name in CORPUS_NOTES]
    assert sorted(parsed.metadata["related"]) == sorted(expected)
    assert parsed.body == notes.parse(exported["before"]["Target note.md"], path="x").body
    assert data.startswith(b"---\nrelated:\n  - \"[[")


def test_written_as_documented(exported):
    after = {k: v.decode("utf-8", "replace") for k, v in exported["after"].items()}
    # A flow list stays flow, in the user's order, with the new tags at the end.
    flow = after["flow list.md"]
    assert 'tags: [project, "quoted tag", \'single\', ai/agents, new-tag]\n' in flow
    # Items copy the list's quoting when every item is quoted the same way.
    assert 'tags: ["#inbox", "#Project", "ai/agents", "new-tag"]\n' in after["hash tags.md"]
    # A block list keeps its indent; its inline comment stays on its line.
    assert (
        "tags:\n    - project    # trailing comment\n    - daily\n    - ai/agents\n"
        "    - PROJECT\n" not in after["block list indent four.md"]
    )
    assert (
        "tags:\n    - project    # trailing comment\n    - daily\n    - ai/agents\n"
        "    - new-tag\nrating: 3\n" in after["block list indent four.md"]
    )
    assert 'tags:\n- project\n- "Quoted"\n- ai/agents\n- new-tag\n' in after[
        "block list indent zero.md"
    ]
    # A single string becomes a block list only because tags were added.
    assert "tags:\n  - journal\n  - ai/agents\n" in after["single string tag.md"]
    assert "tags:\n  - reading\n  - to-do\n" in after["comma string tags.md"]
    # The older `tag` key stays as it was; new tags go to `tags`.
    tag_key = after["tag key.md"]
    assert tag_key.startswith("---\ntag: old-style\ntitle: Tag key\ntags:\n  - ai/agents\n")
    # An existing description is replaced in place; no duplicate key.
    assert after["existing description and related.md"].count("description:") == 1
    # Existing links are recognised in any spelling: no duplicate [[Target note]].
    assert after["existing description and related.md"].count("Target note") == 1
    # Comments stay where they were.
    assert "# comment right after the list\nstatus: active # another\n" in after["comments.md"]
    # A note without frontmatter gains exactly one block at the top, in its newline style.
    assert after["crlf no frontmatter.md"].startswith("---\r\ntags:\r\n  - ai/agents\r\n")


def test_reimport_sees_no_change_and_second_export_writes_nothing(exported):
    _, summary = vault_import(root=exported["root"], name="corpus")
    assert summary.imported == summary.updated == 0
    assert summary.unchanged == len(CORPUS_NOTES) + 1
    again = vault_export(vault=exported["vault"])
    assert again.written == [] and again.ok
    assert {p.name: p.read_bytes() for p in exported["root"].glob("*.md")} == exported["after"]
    out = StringIO()
    call_command("export_vault", "--vault", "corpus", stdout=out)
    assert "written 0" in out.getvalue()


def test_without_curated_check_catches_a_change_elsewhere():
    """The checker itself: a change to another key or a comment is seen."""
    old = "---\ntitle: a # c\ntags:\n  - x\n---\nbody\n"
    assert without_curated(old) == "---\ntitle: a # c\n---\nbody\n"
    assert without_curated(old.replace("# c", "#c")) != without_curated(old)
    assert without_curated(old.replace("  - x\n", "  - x\n  - y\n")) == without_curated(old)
