"""`export_vault [--vault NAME] [--dry-run]`: write approved changes into the notes' frontmatter.

`export_vault --revert RUN --as USERNAME` undoes one export run (the id it printed).
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from curation.review.export import export_run_records, exports_revert, vault_export
from curation.roles import can_export
from ingest.models import Vault
from vaultcms.console import printable


class Command(BaseCommand):
    help = (
        "Write approved tags, descriptions and related links into each note's frontmatter, "
        "changing nothing else in the file. --dry-run prints a unified diff and writes nothing. "
        "A file changed on disk since its import is reported as a conflict and left alone "
        "(run import_vault, then export again). Exits 1 when a file had a conflict or error."
    )

    def add_arguments(self, parser):
        parser.add_argument("--vault", help="the vault's name (default: every vault)")
        parser.add_argument(
            "--dry-run", action="store_true", help="print the unified diff, write nothing"
        )
        parser.add_argument(
            "--revert", metavar="RUN",
            help="undo the export run RUN (as printed after an export): each file goes back to "
            "its old bytes if it is still what the export wrote; the rest are conflicts",
        )  # fmt: skip
        parser.add_argument("--as", dest="username", metavar="USERNAME", help="who reverts")

    def handle(self, *args, vault=None, dry_run=False, **options):
        if options.get("revert"):
            return self.revert(options["revert"], options.get("username"))
        if vault:
            vaults = list(Vault.objects.filter(name=vault))
            if not vaults:
                raise CommandError(f"no vault named {vault!r}")
        else:
            vaults = list(Vault.objects.all())
            if not vaults:
                raise CommandError("no vault imported yet (run import_vault PATH first)")
        show_progress = self.stdout.isatty()
        failures = 0
        lines = []
        for one in vaults:

            def progress(done: int, total: int, path: str, name=one.name) -> None:
                if done == total or done % 20 == 0:
                    self.stdout.write(self._safe(f"\r{name}: exporting {done}/{total}"), ending="")
                    self.stdout.flush()

            summary = vault_export(
                vault=one, dry_run=dry_run, progress=progress if show_progress else None
            )
            if show_progress:
                self.stdout.write("")
            for _path, diff in summary.diffs:
                self.stdout.write(self._safe(diff), ending="")
            for path, reason in summary.conflicts:
                self.stdout.write(self._safe(f"conflict {path}: {reason}"))
            for path, reason in summary.errors:
                self.stdout.write(self._safe(f"error {path}: {reason}"))
            for path in summary.missing:
                self.stdout.write(self._safe(
                    f"deleted {path}: not in the vault any more; its approvals wait for it"))
            if summary.stale:
                self.stdout.write(
                    f"{summary.stale} approval(s) held back: their notes changed after the "
                    "suggestion; review them again, or run curate --stale for new ones"
                )
            if summary.own:
                self.stdout.write(
                    f"{summary.own} approved description(s) not written: the note has its own "
                    "description; approve it alone, on the note's review page, to replace it"
                )
            for note, partner, reason in summary.held:
                self.stdout.write(self._safe(
                    f"held back {note} <-> {partner} (written on neither note until both can "
                    f"be): {reason}"))  # fmt: skip
            failures += len(summary.conflicts) + len(summary.errors)
            lines.append(f"vault {one.name}: {summary.line()}")
            if summary.written and not dry_run:  # before the summary lines, which end the output
                self.stdout.write(
                    f"export run {summary.run} (undo: export_vault --revert {summary.run} --as USER)"
                )
        for line in lines:
            self.stdout.write(self._safe(line))
        if failures:
            raise CommandError(f"{failures} note(s) not exported (conflicts or errors above)")

    def revert(self, run: str, username: str | None) -> None:
        if not username:
            raise CommandError("say who reverts: --as USERNAME (a moderator)")
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        if not can_export(user):
            raise CommandError(f"{username} may not revert exports (needs the Moderator group)")
        records = list(export_run_records(run=run))
        if not records:
            raise CommandError(f"no export run {run!r} with anything left to revert")
        summary = exports_revert(records=records, user=user)
        for path, reason in summary.conflicts:
            self.stdout.write(self._safe(f"conflict {path}: {reason}"))
        self.stdout.write(f"run {run}: {summary.line()}")
        if summary.conflicts:
            raise CommandError(f"{len(summary.conflicts)} note(s) not reverted (conflicts above)")

    def _safe(self, text: str) -> str:
        stream = getattr(self.stdout, "_out", None)
        if getattr(stream, "encoding", None) is None:  # an in-memory stream takes any text
            return text
        return printable(text, stream)
