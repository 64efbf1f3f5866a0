"""Export on vaults as people keep them: decomposed (NFD) names, JSON frontmatter, odd names."""

import unicodedata
from pathlib import Path

import pytest

from curation.review.export import vault_export
from ingest import notes
from ingest.importer import vault_import
from ingest.models import Note
from tests.ingest.export_factory import approve_related, approve_tags

pytestmark = pytest.mark.django_db

NFD_A = unicodedata.normalize("NFD", "한국어 문법")
NFD_B = unicodedata.normalize("NFD", "서울 여행 계획")


def meta(root: Path, rel: str) -> dict:
    return notes.parse((root / rel).read_bytes(), path=rel).metadata


def test_decomposed_names_link_both_ways_as_stored(tmp_path):
    root = tmp_path / "vault"
    (root / "k").mkdir(parents=True)
    (root / "k" / f"{NFD_A}.md").write_text("---\ntitle: a\n---\n문법 정리.\n")
    (root / "k" / f"{NFD_B}.md").write_text("여행 계획.\n")
    _, vault = vault_import(root=str(root), name="ko"), None
    vault = Note.objects.first().vault
    a = Note.objects.get(path=f"k/{NFD_A}.md")
    approve_related(a, [f"k/{NFD_B}.md"])
    summary = vault_export(vault=vault)
    assert summary.ok, summary.errors
    assert meta(root, f"k/{NFD_A}.md")["related"] == [f"[[{NFD_B}]]"]
    assert meta(root, f"k/{NFD_B}.md")["related"] == [f"[[{NFD_A}]]"]


def vault_of(root: Path, files: dict[str, str]):
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    vault_import(root=str(root), name="v")
    return Note.objects.first().vault


def test_json_frontmatter_gets_curated_keys_in_its_own_style(tmp_path):
    text = '---\n{"title": "Заметка", "aliases": ["z"]}\n---\nТекст.\n'
    vault = vault_of(tmp_path, {"wiki/Заметка.md": text, "wiki/Другая.md": "Другая.\n"})
    approve_tags(Note.objects.get(path="wiki/Заметка.md"), ["вики/история"])
    approve_related(Note.objects.get(path="wiki/Заметка.md"), ["wiki/Другая.md"])
    summary = vault_export(vault=vault)
    assert summary.ok, summary.errors
    assert (tmp_path / "wiki/Заметка.md").read_text() == (
        '---\n{"title": "Заметка", "aliases": ["z"], "tags": ["вики/история"], '
        '"related": ["[[Другая]]"]}\n---\nТекст.\n'
    )
    assert meta(tmp_path, "wiki/Другая.md")["related"] == ["[[Заметка]]"]


@pytest.mark.parametrize(
    "odd", ["What? Why! How#.md", "Notes (2024) [final].md", "Rust Arguments].md", "a ^ b.md",
            "x | y.md"],
)  # fmt: skip
def test_a_note_whose_name_breaks_links_gets_none_either_way(tmp_path, odd):
    vault = vault_of(tmp_path, {odd: "Odd.\n", "Plain.md": "Plain.\n", "Other.md": "Other.\n"})
    approve_related(Note.objects.get(path=odd), ["Plain.md"])
    approve_related(Note.objects.get(path="Plain.md"), [odd, "Other.md"])
    summary = vault_export(vault=vault)
    assert summary.ok, summary.errors
    assert "related" not in meta(tmp_path, odd)
    assert meta(tmp_path, "Plain.md")["related"] == ["[[Other]]"]
    assert meta(tmp_path, "Other.md")["related"] == ["[[Plain]]"]


def test_a_link_already_in_the_body_is_not_written_again(tmp_path):
    vault = vault_of(tmp_path, {"A.md": "See [[B|bee]].\n", "B.md": "Bee.\n"})
    approve_related(Note.objects.get(path="A.md"), ["B.md"])
    summary = vault_export(vault=vault)
    assert summary.ok, summary.errors
    assert (tmp_path / "A.md").read_text() == "See [[B|bee]].\n"
    assert meta(tmp_path, "B.md")["related"] == ["[[A]]"]


def test_a_related_link_written_nfc_is_the_same_link_as_an_nfd_name(tmp_path):
    nfc = unicodedata.normalize("NFC", NFD_B)
    vault = vault_of(tmp_path, {
        f"{NFD_A}.md": f'---\nrelated:\n  - "[[{nfc}]]"\n---\n문법.\n', f"{NFD_B}.md": "여행.\n",
    })  # fmt: skip
    approve_related(Note.objects.get(path=f"{NFD_A}.md"), [f"{NFD_B}.md"])
    summary = vault_export(vault=vault)
    assert summary.ok, summary.errors
    assert meta(tmp_path, f"{NFD_A}.md")["related"] == [f"[[{nfc}]]"]  # not twice
    assert meta(tmp_path, f"{NFD_B}.md")["related"] == [f"[[{NFD_A}]]"]  # as the file is named


def test_an_ambiguous_body_link_does_not_stand_in_for_the_link_back(tmp_path):
    """`[[Permalinks]]` in en/Intro may mean en/Permalinks (Obsidian picks one of the two):
    a related link from de/Permalinks still gets its link back, written by path."""
    vault = vault_of(
        tmp_path,
        {
            "en/Intro.md": "See [[Permalinks]].\n",
            "en/Permalinks.md": "English.\n",
            "de/Permalinks.md": "Deutsch.\n",
        },
    )
    approve_related(Note.objects.get(path="de/Permalinks.md"), ["en/Intro.md"])
    summary = vault_export(vault=vault)
    assert summary.ok, summary.errors
    assert meta(tmp_path, "de/Permalinks.md")["related"] == ["[[Intro]]"]
    assert meta(tmp_path, "en/Intro.md")["related"] == ["[[de/Permalinks]]"]


def test_an_unambiguous_body_link_is_the_link_back(tmp_path):
    vault = vault_of(tmp_path, {"en/Intro.md": "See [[Permalinks]].\n", "de/Permalinks.md": "D.\n"})
    approve_related(Note.objects.get(path="de/Permalinks.md"), ["en/Intro.md"])
    assert vault_export(vault=vault).ok
    assert meta(tmp_path, "de/Permalinks.md")["related"] == ["[[Intro]]"]
    assert "related" not in meta(tmp_path, "en/Intro.md")  # its body links there already


def test_a_note_that_shares_its_name_is_linked_by_the_path_only_it_has(tmp_path):
    vault = vault_of(tmp_path, {
        "Intro.md": "Start here.\n",
        "Plugins/Templates.md": "Core templates.\n",
        "Web Clipper/Templates.md": "Clipper templates.\n",
    })  # fmt: skip
    approve_related(Note.objects.get(path="Intro.md"), ["Plugins/Templates.md"])
    approve_related(Note.objects.get(path="Web Clipper/Templates.md"), ["Plugins/Templates.md"])
    summary = vault_export(vault=vault)
    assert summary.ok, summary.errors
    assert meta(tmp_path, "Intro.md")["related"] == ["[[Plugins/Templates]]"]
    assert meta(tmp_path, "Plugins/Templates.md")["related"] == [
        "[[Intro]]", "[[Web Clipper/Templates]]",
    ]  # fmt: skip
    assert meta(tmp_path, "Web Clipper/Templates.md")["related"] == ["[[Plugins/Templates]]"]
