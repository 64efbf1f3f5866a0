"""import_vault: incremental import, bad input reported per file, files never modified."""

import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from ingest.models import Note, Vault

pytestmark = pytest.mark.django_db

GOOD = "---\ntitle: Good\ntags: [ai, python]\n---\n# Good\n\nBody text.\n"


def run(path, *args):
    from io import StringIO

    out = StringIO()
    call_command("import_vault", str(path), *args, stdout=out)
    return out.getvalue()


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_imports_notes_with_frontmatter_and_tags(make_vault):
    root = make_vault({"a.md": GOOD, "folder/b.md": "# No frontmatter\n\ntext\n"})
    out = run(root, "--name", "main")
    assert "imported 2, updated 0, unchanged 0, skipped 0, missing 0" in out
    a = Note.objects.get(path="a.md")
    assert a.title == "Good" and a.tags == ["ai", "python"] and a.body == "# Good\n\nBody text.\n"
    b = Note.objects.get(path="folder/b.md")
    assert b.folder == "folder" and b.frontmatter == {} and b.title == "b"
    assert Vault.objects.get().name == "main"


def test_reimport_only_changes(make_vault):
    root = make_vault({"a.md": GOOD, "b.md": GOOD})
    run(root)
    assert "imported 0, updated 0, unchanged 2" in run(root)
    (root / "b.md").write_text(GOOD + "more\n", encoding="utf-8")
    (root / "a.md").unlink()
    out = run(root)
    assert "updated 1, unchanged 0, skipped 0, missing 1" in out
    assert Note.objects.get(path="a.md").state == Note.State.MISSING
    assert Note.objects.get(path="b.md").body.endswith("more\n")


def test_bad_files_are_reported_and_never_modified(make_vault):
    root = make_vault(
        {
            "broken.md": "---\ntitle: [unclosed\n---\nbody\n",
            "list.md": "---\n- a\n- b\n---\nbody\n",
            "latin1.md": "caf\xe9\n".encode("latin-1"),
            "binary.md": b"\x89PNG\r\n\x1a\n\x00\x00\x00",
            "empty.md": b"",
            "only-frontmatter.md": "---\ntitle: x\n---\n",
            "ok.md": GOOD,
        }
    )
    before = snapshot(root)
    out = run(root)
    assert "imported 1" in out and "skipped 6" in out
    reasons = dict(Note.objects.filter(state=Note.State.SKIPPED).values_list("path", "reason"))
    assert reasons["broken.md"].startswith("invalid YAML frontmatter at line 3")
    assert "not a mapping" in reasons["list.md"]
    assert "not valid UTF-8" in reasons["latin1.md"]
    assert "binary" in reasons["binary.md"]
    assert reasons["empty.md"] == "empty file"
    assert "frontmatter only" in reasons["only-frontmatter.md"]
    assert f"skipped broken.md: {reasons['broken.md']}" in out
    assert snapshot(root) == before


def test_oversized_file_is_skipped(make_vault, settings):
    settings.VAULTCMS_MAX_NOTE_BYTES = 100
    root = make_vault({"big.md": "x" * 200, "small.md": "x" * 50})
    run(root)
    assert Note.objects.get(path="big.md").reason.startswith("too large: 200 bytes")
    assert Note.objects.get(path="small.md").state == Note.State.OK


def test_hidden_folders_and_outside_symlinks_are_skipped(make_vault, tmp_path):
    outside = tmp_path / "secret.md"
    outside.write_text("secret", encoding="utf-8")
    root = make_vault({".obsidian/x.md": GOOD, ".trash/y.md": GOOD, "n.md": GOOD})
    os.symlink(outside, root / "link.md")
    run(root)
    assert set(Note.objects.values_list("path", "state")) == {
        ("n.md", "ok"),
        ("link.md", "skipped"),
    }


def test_missing_folder_fails_with_one_line():
    with pytest.raises(CommandError, match="no such folder"):
        run("/nonexistent/vault")


MANAGE = Path(__file__).resolve().parents[2] / "manage.py"


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory):
    """A migrated SQLite file, made once; each CLI test works on its own copy."""
    path = tmp_path_factory.mktemp("cli") / "template.sqlite3"
    subprocess.run(
        [sys.executable, MANAGE, "migrate", "-v0"], env=cli_env(path), check=True, timeout=120
    )
    return path


def cli_env(db: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "VAULTCMS_TEST_DB_NAME"}}
    return {**env, "DATABASE_URL": f"sqlite:///{db}", **extra}


@pytest.fixture
def cli_db(migrated_db, tmp_path):
    db = tmp_path / "cli.sqlite3"
    shutil.copyfile(migrated_db, db)
    return db


@pytest.mark.parametrize("encoding", ["cp1252", "ascii"])
def test_unicode_filenames_on_a_narrow_console(make_vault, cli_db, encoding):
    long_name = ("long " * 45).strip() + ".md"  # 227 characters
    names = ["🚀 Launch.md", "日本語ノート.md", "a # b [c].md", "sp a c e s.md", long_name]
    root = make_vault({**{n: GOOD for n in names}, "💥 broken.md": "---\n: :\n---\nx\n"})
    root = root.rename(root.parent / "Vault ☕")
    env = cli_env(cli_db, PYTHONIOENCODING=encoding)
    proc = subprocess.run(
        [sys.executable, MANAGE, "import_vault", str(root)],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode(encoding, "replace")
    out = proc.stdout.decode(encoding)
    assert "imported 5" in out and "skipped 1" in out
    assert "\\U0001f4a5 broken.md" in out  # escaped, not a crash
    assert "Vault \\u2615" in out
    assert "Traceback" not in proc.stderr.decode(encoding, "replace")


def test_progress_bar_only_on_a_terminal(make_vault, cli_db):
    root = make_vault({f"n{i}.md": GOOD for i in range(250)})
    # Not a terminal (captured by call_command): no bar, just the summary.
    assert "Importing" not in run(root)

    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, MANAGE, "import_vault", str(root)],
        env=cli_env(cli_db), stdin=subprocess.DEVNULL, stdout=secondary, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    assert proc.wait(timeout=120) == 0
    out = b"".join(chunks).decode()
    assert "\rImporting [" in out and "250/250" in out and "imported 250" in out


def test_sample_vault_imports_with_its_broken_note_skipped(tmp_path):
    sample = Path(__file__).resolve().parents[2] / "sample_vault"
    root = tmp_path / "sample"
    shutil.copytree(sample, root)
    before = snapshot(root)
    out = run(root, "--name", "Sample")
    assert "skipped 1" in out and "skipped Inbox/Broken frontmatter.md: invalid YAML" in out
    ok = Note.objects.filter(state=Note.State.OK)
    assert ok.count() >= 30 and not Note.objects.filter(path__startswith=".obsidian").exists()
    assert ok.filter(path="Home Lab/🚀 Self-hosting roadmap.md").exists()
    assert ok.filter(path="Travel/東京 ラーメン.md").exists()
    assert ok.exclude(tags=[]).count() >= 25
    assert snapshot(root) == before


def test_files_are_never_written_through_a_whole_import_cycle(make_vault):
    root = make_vault({"a.md": GOOD, "b/c.md": "plain\r\n", "bad.md": "---\n[\n---\nx\n"})
    stats = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    before = snapshot(root)
    for _ in range(2):
        run(root)
    (root / "d.md").write_text(GOOD, encoding="utf-8")
    run(root)
    (root / "d.md").unlink()
    run(root)
    assert snapshot(root) == before
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == stats


def test_help_works():
    proc = subprocess.run(
        [sys.executable, MANAGE, "import_vault", "--help"], capture_output=True, timeout=60
    )
    assert proc.returncode == 0
    assert b"imports only what changed" in b" ".join(proc.stdout.split())
