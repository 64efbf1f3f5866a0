"""`consolidate_tags VAULT [--mode ...] [--max-cost USD] [--wait]`: a tag consolidation job."""

from django.core.management.base import BaseCommand, CommandError

from curation.engine import jobs
from curation.management.commands.curate import counts_line
from curation.models import Job, Mode
from ingest.models import Vault
from vaultcms.console import printable


class Command(BaseCommand):
    help = (
        "Create a tag consolidation job for one vault and queue it to the workers (qcluster): "
        "the vault's whole tag list, with how many notes carry each tag and a few example "
        "titles, goes to the model (in parts of CURATION_CONSOLIDATION_TAGS tags, one request "
        "each), which proposes merges and renames (e.g. js -> coding/languages/javascript, "
        "Agents -> agents). Nothing changes in the vault: each proposal is reviewed in the "
        "admin (Tag consolidations); approved ones become tag renames that export_vault "
        "applies. Like `curate`, it runs through the job engine: auto mode sends one request "
        "in real time and several as a half-price Message Batch; the cost is estimated first "
        "and the job refused when over the maximum. --wait runs the job here to its end and "
        "prints the proposed merges."
    )

    def add_arguments(self, parser):
        parser.add_argument("vault", metavar="VAULT", nargs="?", help="the vault's name")
        parser.add_argument(
            "--vault", dest="vault_option", metavar="VAULT",
            help="the same, as an option (the spelling of earlier releases)",
        )  # fmt: skip
        parser.add_argument(
            "--mode", choices=Mode.values, default=Mode.AUTO,
            help="default: auto (one request: real time; several: a Message Batch)",
        )  # fmt: skip
        parser.add_argument(
            "--max-cost",
            metavar="USD",
            help="the job's budget in US dollars: refused when estimated over it, stops sending "
            "when it reaches it (default: CURATION_MAX_JOB_COST; 0: no limit)",
        )
        parser.add_argument(
            "--wait", action="store_true",
            help="run the job here to its end (no worker needed) and print the proposed merges",
        )  # fmt: skip

    def handle(self, *args, vault, vault_option, **options):
        if vault and vault_option and vault != vault_option:
            raise CommandError(f"two vaults named: {vault!r} and --vault {vault_option!r}")
        vault = vault or vault_option
        if not vault:
            raise CommandError("name the vault: consolidate_tags VAULT")
        one = Vault.objects.filter(name=vault).first()
        if one is None:
            known = ", ".join(Vault.objects.values_list("name", flat=True)[:10]) or "none"
            raise CommandError(printable(f"unknown vault {vault!r} (vaults: {known})"))
        try:
            job = jobs.consolidation_create(
                vault_id=one.pk, mode=options["mode"], max_cost=options["max_cost"]
            )
        except ValueError as exc:  # fewer than two tags, no price, over the maximum cost
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"job {job.id}: {job.selection}, mode {job.mode}, estimated cost "
            f"${job.cost_estimate}"
            + (f" (maximum ${job.max_cost.normalize():f})" if job.max_cost else "")
        )
        if not options["wait"]:
            jobs.job_start(job_id=job.id)
            return f"job {job.id} queued"
        return self.wait(job)

    def wait(self, job: Job) -> str:
        try:
            jobs.job_run(job_id=job.id)
        except KeyboardInterrupt:
            jobs.job_enqueue(job_id=job.id)
            raise CommandError(f"interrupted: job {job.id} handed to the workers") from None
        job.refresh_from_db()
        counts = counts_line(jobs.item_counts(job_ids=[job.id]).get(job.id, {}))
        if job.state != Job.State.SUCCEEDED:
            failed = job.items.exclude(error="").values_list("error", flat=True).first()
            reason = f" ({job.error or failed})" if job.error or failed else ""
            raise CommandError(f"job {job.id} {job.state}: {counts}{reason}; cost ${job.cost}")
        merges = list(job.consolidations.values_list("old", "new", "notes"))
        for old, new, notes in merges:
            self.stdout.write(printable(f"{old} -> {new} ({notes} note{'s' if notes != 1 else ''})"))
        return (
            f"job {job.id}: {len(merges)} merge(s) proposed; cost ${job.cost}; review them in "
            "the admin (Tag consolidations)"
        )
