"""notes_import: only the named files of a vault, nothing else walked."""

import os

import pytest

from ingest.importer import notes_import, vault_import
from ingest.models import Note

pytestmark = pytest.mark.django_db


def test_imports_only_the_named_files(make_vault):
    root = make_vault({"a.md": "# A\n", "b.md": "# B\n", "c.md": "# C\n"})
    vault, _ = vault_import(root=root, name="v")
    (root / "a.md").write_text("# A2\n")
    (root / "b.md").write_text("# B2\n")
    (root / "new.md").write_text("# New\n")
    os.remove(root / "c.md")
    summary = notes_import(vault=vault, paths=["a.md", "new.md", "c.md"])
    assert (summary.updated, summary.imported, summary.missing) == (1, 1, 1)
    assert Note.objects.get(path="a.md").body == "# A2\n"
    assert Note.objects.get(path="b.md").body == "# B\n"  # not named: not read
    assert Note.objects.get(path="c.md").state == "missing"


def test_refuses_paths_outside_the_vault(make_vault, tmp_path):
    root = make_vault({"a.md": "# A\n"})
    vault, _ = vault_import(root=root, name="v")
    (tmp_path / "secret.md").write_text("# Secret\n")
    os.symlink(tmp_path / "secret.md", root / "link.md")
    summary = notes_import(vault=vault, paths=["../secret.md", ".hidden/x.md", "link.md"])
    reasons = dict(summary.skipped)
    assert reasons["../secret.md"] == "not a note inside the vault"
    assert reasons[".hidden/x.md"] == "not a note inside the vault"
    assert reasons["link.md"] == "symlink to a file outside the vault"
    assert not Note.objects.filter(body__contains="Secret").exists()


def test_a_symlink_to_a_note_of_the_vault_is_not_a_second_note(make_vault):
    """`Starter Alias.md -> Starter.md`: the note is imported once, under its own name; the
    link would be a note export can never write, and a related link from a note to itself."""
    root = make_vault({"Starter.md": "# Starter\nRye and water.\n", "Real/x.md": "# X\n"})
    os.symlink(root / "Starter.md", root / "Starter Alias.md")
    os.symlink(root / "Real", root / "Linked")
    os.symlink(root / "Gone.md", root / "Dangling.md")
    vault, summary = vault_import(root=root, name="v")
    reason = "symlink to Starter.md in the vault: that file is the note, imported under its own name"
    assert dict(summary.skipped) == {"Starter Alias.md": reason,
                                     "Dangling.md": "symlink to a file that does not exist"}
    assert sorted(Note.objects.filter(state="ok").values_list("path", flat=True)) == [
        "Real/x.md", "Starter.md"]
    again = notes_import(vault=vault, paths=["Starter Alias.md", "Linked/x.md", "Starter.md"])
    assert dict(again.skipped) == {
        "Starter Alias.md": reason,
        "Linked/x.md": "symlink to Real/x.md in the vault: that file is the note, imported "
        "under its own name",
    }
    assert Note.objects.get(path="Starter Alias.md").state == "skipped"
    assert not Note.objects.filter(path="Linked/x.md").exclude(state="skipped").exists()


def test_notes_in_the_vaults_template_folders_are_skipped_with_their_reason(make_vault):
    """Obsidian's Templates plugin and Templater name their folders in .obsidian: a tag written
    into Templates/Daily.md would reach every daily note made from it, so it is not curated."""
    root = make_vault({"Templates/Daily.md": "# Daily\n## Log\n", "Tpl/Meeting.md": "Agenda\n",
                       "Daily/2024-05-01.md": "# 2024-05-01\n## Log\nRain.\n",
                       "Templates of letters.md": "Dear ...\n"})  # fmt: skip
    (root / ".obsidian/plugins/templater-obsidian").mkdir(parents=True)
    (root / ".obsidian/templates.json").write_text('{"folder": "Templates/"}')
    (root / ".obsidian/plugins/templater-obsidian/data.json").write_text(
        '{"templates_folder": "Tpl", "trigger_on_file_creation": true}')
    vault, summary = vault_import(root=root, name="v")
    assert dict(summary.skipped) == {
        "Templates/Daily.md": "a template (the folder Templates/ is named in "
        ".obsidian/templates.json): not curated, so the notes made from it do not inherit its tags",
        "Tpl/Meeting.md": "a template (the folder Tpl/ is named in "
        ".obsidian/plugins/templater-obsidian/data.json): not curated, so the notes made from it "
        "do not inherit its tags",
    }
    assert sorted(Note.objects.filter(state="ok").values_list("path", flat=True)) == [
        "Daily/2024-05-01.md", "Templates of letters.md"]
    again = notes_import(vault=vault, paths=["Templates/Daily.md"])
    assert [path for path, _ in again.skipped] == ["Templates/Daily.md"]
    # Settings that do not parse name no folder; nothing else changes.
    (root / ".obsidian/templates.json").write_text("{not json")
    (root / ".obsidian/plugins/templater-obsidian/data.json").write_text('["a list"]')
    _, summary = vault_import(root=root, name="v")
    assert summary.skipped == [] and Note.objects.get(path="Templates/Daily.md").state == "ok"


def test_a_note_holding_template_commands_or_variables_is_a_template(make_vault):
    """No settings name the folder (a vault synced without .obsidian/): Templater's `<% tp.`
    or the Templates plugin's `{{date}}` still say what the note is; in code they do not."""
    root = make_vault({"T/Daily.md": "# <% tp.date.now() %>\n## Log\n",
                       "T/Meeting.md": '---\ncreated: "{{date:YYYY-MM-DD}}"\n---\n# {{title}}\n',
                       "T/Plain.md": "---\ndate: {{date}}\n---\n# Day\n",  # no YAML till filled
                       "Broken.md": "---\nbad: [\n---\nWrite {{title}} in a template.\n",
                       "Jinja.md": "Render `{{title}}` with:\n```\n<% tp.file.title %>\n```\n"})
    _, summary = vault_import(root=root, name="v")
    reasons = dict(summary.skipped)
    assert reasons == {
        "T/Daily.md": "a template (<% tp. in its text): not curated, so the notes made from it "
        "do not inherit its tags",
        "T/Meeting.md": "a template ({{date:YYYY-MM-DD}} in its text): not curated, so the notes "
        "made from it do not inherit its tags",
        "T/Plain.md": "a template ({{date}} in its text): not curated, so the notes made from it "
        "do not inherit its tags",
        "Broken.md": reasons["Broken.md"],
    }
    assert "YAML" in reasons["Broken.md"]  # broken for its own reason, not a template
    assert Note.objects.get(path="Jinja.md").state == "ok"
