"""`import_vault PATH [--name NAME]`: register or refresh a vault and import its notes."""

import sys

from django.core.management.base import BaseCommand, CommandError

from ingest.importer import VaultNotFound, vault_import
from vaultcms.console import printable

BAR_WIDTH = 30


class Command(BaseCommand):
    help = (
        "Import every *.md note under PATH into a vault (created or refreshed). Re-running "
        "imports only what changed; unreadable files are reported with their reason and left "
        "untouched."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="the vault folder")
        parser.add_argument(
            "--name",
            help="vault name (default: the vault already registered at PATH, else the folder name)",
        )

    def handle(self, *args, path, name, **options):
        show_progress = self.stdout.isatty()

        def progress(done: int, total: int) -> None:
            if done == total or done % 100 == 0:
                filled = BAR_WIDTH * done // total
                bar = "#" * filled + "." * (BAR_WIDTH - filled)
                self.stdout.write(f"\rImporting [{bar}] {done}/{total}", ending="")
                self.stdout.flush()

        try:
            vault, summary = vault_import(
                root=path, name=name, progress=progress if show_progress else None
            )
        except VaultNotFound as exc:
            raise CommandError(str(exc)) from None
        if show_progress:
            self.stdout.write("")
        for rel, reason in summary.skipped:
            self.stdout.write(printable(f"skipped {rel}: {reason}", sys.stdout))
        return f"vault {vault.name}: {summary.line()}"
