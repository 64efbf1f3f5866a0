"""`consolidate_tags --vault NAME`: ask the model for merges over the vault's whole tag list."""

from django.core.management.base import BaseCommand, CommandError

from curation.engine.consolidation import consolidation_run
from curation.models import Job
from curation.review.decisions import ReviewError
from ingest.models import Vault


class Command(BaseCommand):
    help = (
        "Send the vault's tag list (with counts and example titles) to the model in one "
        "real-time call and store its proposed merges and renames for review (admin: Tag "
        "consolidations). Approved ones become tag renames that export applies."
    )

    def add_arguments(self, parser):
        parser.add_argument("--vault", required=True, metavar="NAME")

    def handle(self, *args, vault, **options):
        one = Vault.objects.filter(name=vault).first()
        if one is None:
            raise CommandError(f"no vault named {vault!r}")
        try:
            job = consolidation_run(vault_id=one.pk)
        except ReviewError as exc:
            raise CommandError(str(exc)) from None
        if job.state != Job.State.SUCCEEDED:
            raise CommandError(f"job {job.pk} failed: {job.error}")
        for merge in job.consolidations.all():
            self.stdout.write(f"{merge.old} -> {merge.new} ({merge.notes} notes)")
        return f"job {job.pk}: {job.consolidations.count()} merge(s) proposed; cost ${job.cost}"
