"""The whole round trip through the commands, on vaults written by people: import_vault ->
curate (the built-in emulator, batch) -> review approve -> export_vault, then the vault is
checked from outside, without the writer's own helpers:

- a file export did not write is byte for byte what it was;
- a file it wrote keeps its body byte for byte, and every frontmatter key but the curated ones
  (tags, description, related) with its value, its order and, in block style, its very lines;
- every `related` link names a note of the vault that links back (no one-way or dangling link),
  and never the note itself;
- a second import sees nothing new to skip, and a second export writes nothing.

Vaults: the sample vault, `../shared/corpus/obsidian-help` when it is on this machine (319
notes in ten languages), and a vault built here with what real vaults hold (decomposed Unicode
names, one-line JSON frontmatter, names that break wikilinks, CRLF, a BOM, emoji, dangling
body links).
"""

import io
import re
import shutil
import stat
import unicodedata
from pathlib import Path

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.core.management import call_command

from ingest.models import Note

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
CURATED = {"tags", "description", "related"}
CORPUS = [
    ROOT.parent / "shared" / "corpus" / "obsidian-help",
    Path("/work/shared/corpus/obsidian-help"),
]
FRONTMATTER = re.compile(r"\A(\ufeff?---\r?\n)(.*?\r?\n)?(---[ \t]*(?:\r?\n|\Z))", re.S)
LINK = re.compile(r"^\[\[([^\[\]|#]+)\]\]$")
# The name only; an embed (`![[Name]]`) is a link too: Obsidian lists it among the backlinks.
BODY_LINK = re.compile(r"\[\[([^\[\]|#\n]+)(?:[|#][^\]\n]*)?\]\]")
BREAKS = set("#^[]|")


@pytest.fixture
def fast_polls(settings):
    """Batches end at once in the emulator; poll them without the production pauses."""
    settings.CURATION_POLL_MIN_SECONDS = 0.01
    settings.CURATION_POLL_SECONDS = 0.05


def people_vault(root: Path) -> Path:
    """A small vault with what the curated vaults of real people hold."""
    nfd = unicodedata.normalize("NFD", "한국어 문법 정리")
    files = {
        f"한국어/{nfd}.md": "---\ntitle: 문법\n---\n한국어 문법 정리. 조사와 어미를 정리한다.\n",
        f"한국어/{unicodedata.normalize('NFD', '서울 여행 계획')}.md": "서울 여행 계획과 한국어 표현.\n",
        "wiki/Заметка.md": '---\n{"title": "Заметка", "aliases": ["z"], "n": 3}\n---\nИстория вики.\n',
        "wiki/Другая заметка.md": '---\n{"title": "Другая"}\n---\nИстория и вики, [[Нет такой]].\n',
        "What? Why! How#.md": "---\ntags: [questions]\n---\nQuestions about rust and python.\n",
        "Notes (2024) [final].md": "Final notes on python packaging and rust crates.\n",
        "crlf.md": "---\r\ntitle: CRLF note  # a comment\r\ntags:\r\n  - python\r\n---\r\nPython on Windows.\r\n",
        "bom.md": "\ufeff---\nauthor: 'someone'\nrelated: ['[[crlf]]']\n---\nRust and python, with a BOM.\n",
        "emoji 🚀 launch.md": "---\ndate: 2024-01-02\nkeywords:\n- rockets # why\n- 🚀\n---\nRust rockets and python launch scripts.\n",
        "links/Python packaging.md": "See [[crlf]] and [[Missing note]] and [[bom|the BOM one]].\n",
        "links/Rust crates.md": "---\ncssclasses: [wide]\n---\nRust crates, cargo and python bindings.\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def parts(data: bytes) -> tuple[str, str]:
    """(frontmatter text, body text) of a file; no frontmatter is ("", whole text)."""
    text = (
        data.decode("utf-8-sig")
        if not data.startswith((b"\xff\xfe", b"\xfe\xff"))
        else data.decode("utf-16")
    )
    match = FRONTMATTER.match(text)
    if match is None:
        return "", text
    return match.group(2) or "", text[match.end() :]


def block_lines_outside_curated(front: str) -> list[str] | None:
    """The frontmatter's lines that belong to no curated key (block style); None for flow style."""
    if front.lstrip().startswith("{"):
        return None
    kept, key = [], None
    for line in front.splitlines():
        top = re.match(r"^([^\s#'\"-][^:]*|'[^']*'|\"[^\"]*\"):(\s|$)", line)
        if top:
            key = top.group(1).strip("'\"")
        elif line and not line[0].isspace() and not line.startswith("-"):
            key = None  # a comment or anything else at the left margin ends the key
        if key not in CURATED:
            kept.append(line)
    return kept


def stem(rel: str) -> str:
    return rel.rsplit("/", 1)[-1][:-3]


def key(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def round_trip(root: Path, name: str) -> dict:
    """Run the four commands on the vault at `root`; returns before/after snapshots and output."""
    get_user_model().objects.create_superuser("admin", password=None)
    before = snapshot(root)
    out = io.StringIO()
    call_command("import_vault", str(root), "--name", name, stdout=out)
    call_command("curate", "--vault", name, "--wait", stdout=out)
    call_command("review", "approve", "--all", "--as", "admin", stdout=out)
    call_command("export_vault", "--vault", name, stdout=out)
    return {"before": before, "after": snapshot(root), "out": out.getvalue()}


def check_vault(root: Path, name: str, result: dict) -> None:
    before, after = result["before"], result["after"]
    assert sorted(before) == sorted(after), "export created or removed files"
    notes = {rel: data for rel, data in after.items() if rel.lower().endswith(".md")}
    written = [rel for rel in notes if after[rel] != before[rel]]
    assert written, "the round trip wrote nothing: the check would prove nothing"

    meta = {}
    for rel in written:
        old_front, old_body = parts(before[rel])
        new_front, new_body = parts(after[rel])
        assert new_body == old_body, f"{rel}: body changed"
        old = yaml.safe_load(old_front) or {} if old_front else {}
        new = yaml.safe_load(new_front) or {}
        others = [k for k in old if k not in CURATED]
        assert [k for k in new if k not in CURATED] == others, f"{rel}: key order changed"
        for k in others:
            assert new[k] == old[k], f"{rel}: {k} changed"
        old_lines = block_lines_outside_curated(old_front) if old_front else []
        if old_lines is not None:
            assert block_lines_outside_curated(new_front) == old_lines, f"{rel}: lines changed"
        else:
            assert new_front.count("\n") == old_front.count("\n"), f"{rel}: flow style broken"
        assert any(new.get(k) != old.get(k) for k in CURATED), f"{rel}: written, nothing curated"
    for rel in notes:
        front, _ = parts(after[rel])
        try:
            meta[rel] = (yaml.safe_load(front) or {}) if front else {}
        except yaml.YAMLError:
            meta[rel] = {}  # a note the import skips (broken YAML) is never written: checked above

    by_name: dict[str, list[str]] = {}
    for rel in notes:  # Obsidian resolves [[a/b/Name]] to the note whose path ends so
        segments = rel[:-3].split("/")
        for i in range(len(segments)):
            by_name.setdefault(key("/".join(segments[i:])), []).append(rel)
    links = 0
    for rel, data in meta.items():
        related = data.get("related") or []
        if after[rel] == before[rel] or not isinstance(related, list):
            continue
        front, _ = parts(before[rel])
        had = (yaml.safe_load(front) or {}).get("related") or [] if front else []
        for value in [v for v in related if v not in had]:  # the author's own links are theirs
            match = LINK.match(str(value))
            assert match, f"{rel}: related value {value!r} is not a plain wikilink"
            targets = by_name.get(key(match.group(1)), [])
            assert len(targets) == 1, f"{rel}: [[{match.group(1)}]] names no single note"
            target = targets[0]
            assert target != rel, f"{rel} links to itself"
            _, body = parts(after[target])
            back = {
                key(m.group(1))
                for v in meta[target].get("related") or []
                if (m := LINK.match(str(v)))
            }
            back |= {key(name) for name in BODY_LINK.findall(body)}  # linked in its text already
            names = [n for n, rels in by_name.items() if rels == [rel]]  # what names it alone
            assert set(names) & back, f"one-way link {rel} -> {target}"
            assert not BREAKS & set(stem(rel)), f"{rel} cannot be linked back, yet links"
            links += 1
    assert links, "no related links were exported: the link checks would prove nothing"

    out = io.StringIO()
    call_command("import_vault", str(root), "--name", name, stdout=out)
    assert (
        not Note.objects.filter(vault__name=name, state="skipped")
        .exclude(path__in=[r for r in notes if before[r] == after[r]])
        .exists()
    ), "a written note no longer imports"
    call_command("export_vault", "--vault", name, stdout=out)
    assert snapshot(root) == after, "a second export wrote again"


def test_people_vault_round_trips(tmp_path, emulator, fast_polls):
    root = people_vault(tmp_path / "people")
    result = round_trip(root, "people")
    check_vault(root, "people", result)
    unlinkable = ["What? Why! How#.md", "Notes (2024) [final].md"]
    for rel in unlinkable:
        _, _ = parts(result["after"][rel])
        front, _ = parts(result["after"][rel])
        assert not (yaml.safe_load(front) or {} if front else {}).get("related")
    json_note = result["after"]["wiki/Заметка.md"].decode()
    assert json_note.startswith('---\n{"title": "Заметка", "aliases": ["z"], "n": 3')


def test_sample_vault_round_trips(tmp_path, emulator, fast_polls):
    root = tmp_path / "sample"
    shutil.copytree(ROOT / "sample_vault", root)
    check_vault(root, "sample", round_trip(root, "sample"))


@pytest.mark.skipif(not any(p.is_dir() for p in CORPUS), reason="no obsidian-help corpus here")
def test_obsidian_help_round_trips(tmp_path, emulator, fast_polls):
    root = tmp_path / "obsidian-help"
    shutil.copytree(next(p for p in CORPUS if p.is_dir()), root)  # the corpus is read only
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)  # as the user's own copy would be
    check_vault(root, "help", round_trip(root, "help"))
