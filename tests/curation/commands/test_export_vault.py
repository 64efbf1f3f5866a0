"""export_vault: the command's output, dry run, exit codes and safety on any console."""

import io
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from ingest.importer import vault_import
from ingest.models import Note
from tests.ingest.export_factory import approve_related, approve_tags

pytestmark = pytest.mark.django_db

A = "---\ntitle: A\ntags:\n  - python\n---\nBody.\n"


def run(*args, stdout=None):
    out = stdout or StringIO()
    call_command("export_vault", *args, stdout=out)
    return out.getvalue() if stdout is None else out


@pytest.fixture
def vault(make_vault):
    vault, _ = vault_import(root=make_vault({"a.md": A, "🚀 launch.md": "Go\n"}), name="main")
    approve_tags(Note.objects.get(path="a.md"), ["ai/agents"])
    approve_tags(Note.objects.get(path="🚀 launch.md"), ["space"])
    return vault


def test_help_works():
    from curation.management.commands.export_vault import Command

    text = Command().create_parser("manage.py", "export_vault").format_help()
    assert "--dry-run" in text and "--vault" in text and "conflict" in text


def test_export_prints_summary(vault):
    out = run("--vault", "main")
    assert out.strip().endswith("vault main: written 2, unchanged 0, conflicts 0, errors 0")
    assert "  - ai/agents\n" in (Path(vault.root) / "a.md").read_text()
    assert "written 0, unchanged 0" in run("--vault", "main")


def test_dry_run_prints_a_diff_and_writes_nothing(vault):
    out = run("--dry-run")
    assert "--- a/a.md\n+++ b/a.md\n" in out and "+  - ai/agents\n" in out
    assert "+++ b/🚀 launch.md\n" in out
    assert "vault main: would write 2" in out
    assert (Path(vault.root) / "a.md").read_text() == A


def test_unknown_vault_fails_with_a_reason(vault):
    with pytest.raises(CommandError, match="no vault named 'nope'"):
        run("--vault", "nope")


def test_conflict_exits_nonzero_after_reporting(vault):
    (Path(vault.root) / "a.md").write_text(A + "edited\n")
    out = StringIO()
    with pytest.raises(CommandError, match="1 note\\(s\\) not exported"):
        run("--vault", "main", stdout=out)
    text = out.getvalue()
    assert "conflict a.md: changed on disk since it was imported" in text
    assert "vault main: written 1, unchanged 0, conflicts 1, errors 0" in text


def test_a_held_back_link_is_reported_and_the_summary_still_printed(vault):
    """A link whose other note changed on disk waits on both notes; the command says so,
    then ends with the vault's summary line like any other run, dry or not."""
    approve_related(Note.objects.get(path="🚀 launch.md"), ["a.md"])
    (Path(vault.root) / "a.md").write_text(A + "edited\n")
    for args in (("--dry-run",), ()):
        out = StringIO()
        with pytest.raises(CommandError, match="1 note\\(s\\) not exported"):
            run(*args, stdout=out)
        text = out.getvalue()
        assert "held back 🚀 launch.md <-> a.md (written on neither note until both can be): a.md:" in (
            text)
        assert text.rstrip().splitlines()[-1].startswith("vault main: ")
        assert "links held back 1" in text


def test_output_on_an_ascii_console_does_not_crash(vault):
    raw = io.BytesIO()
    console = io.TextIOWrapper(raw, encoding="ascii", errors="strict")
    run("--dry-run", stdout=console)
    console.flush()
    text = raw.getvalue().decode("ascii")
    assert "+++ b/\\U0001f680 launch.md" in text


class Terminal(StringIO):
    def isatty(self):
        return True


def test_progress_line_on_a_terminal(vault):
    out = run(stdout=Terminal()).getvalue()
    assert "\rmain: exporting 2/2" in out
    assert out.rstrip().endswith("vault main: written 2, unchanged 0, conflicts 0, errors 0")
