"""`curate [--all | --vault NAME | --path GLOB] [--stale] [--fields ...] [--mode ...]
[--max-cost USD] [--wait]`."""

from fnmatch import fnmatchcase

from django.core.management.base import BaseCommand, CommandError

from curation.engine import jobs
from curation.models import ALL_FIELDS, Item, Job, Mode
from curation.review.stale import stale_note_ids
from ingest.models import Note, Vault
from vaultcms.console import printable


def counts_line(counts: dict[str, int]) -> str:
    """`succeeded 30, failed 2`: the item states a job has, in the model's order."""
    parts = [f"{state} {counts[state]}" for state in Item.State.values if counts.get(state)]
    return ", ".join(parts) or "no items"


class Command(BaseCommand):
    help = (
        "Create one curation job over the selected notes and queue it to the workers "
        "(qcluster). auto mode: one note -> one real-time Messages call, two or more -> the "
        "Message Batches API. --wait runs the job to its end in this process instead and "
        "prints per-state counts and the job's cost."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--all", action="store_true", help="every imported note")
        which.add_argument("--vault", metavar="NAME", help="the notes of one vault")
        parser.add_argument(
            "--path",
            metavar="GLOB",
            help="notes whose vault-relative path matches GLOB (e.g. 'projects/*'); "
            "combines with --vault",
        )
        parser.add_argument(
            "--stale",
            action="store_true",
            help="only notes whose latest suggestions were made for other text (edited since, "
            "whether those suggestions are pending, approved or exported); "
            "alone it means every vault, or combine with --vault/--path",
        )
        parser.add_argument(
            "--fields",
            default=",".join(ALL_FIELDS),
            help=f"comma-separated fields to suggest (default: {','.join(ALL_FIELDS)})",
        )
        parser.add_argument(
            "--mode", choices=Mode.values, default=Mode.AUTO, help="default: auto"
        )
        parser.add_argument(
            "--urgent", action="store_true", help="auto mode: parallel real-time calls, not a batch"
        )
        parser.add_argument(
            "--max-cost",
            metavar="USD",
            help="the job's budget in US dollars: refused when estimated over it, stops sending "
            "when it reaches it (default: CURATION_MAX_JOB_COST; 0: no limit)",
        )
        parser.add_argument(
            "--wait", action="store_true", help="run the job here to its end (no worker needed)"
        )

    def handle(self, *args, **options):
        notes, selection = self.selection(options)
        try:
            fields = jobs.fields_clean(options["fields"].split(","))
            job = jobs.job_create(
                notes=notes,
                fields=fields,
                mode=options["mode"],
                urgent=options["urgent"],
                selection=selection,
                max_cost=options["max_cost"],
            )
        except jobs.NoNotesError:
            raise CommandError(printable(f"no curatable notes matched {selection}")) from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        n = job.items.count()
        self.stdout.write(
            f"job {job.id}: {n} note{'' if n == 1 else 's'}, mode {job.mode}, fields "
            f"{','.join(job.fields)}, estimated cost ${job.cost_estimate}"
            + (f" (maximum ${job.max_cost.normalize():f})" if job.max_cost else "")
        )
        if not options["wait"]:
            jobs.job_start(job_id=job.id)
            return f"job {job.id} queued"
        return self.wait(job)

    def selection(self, options):
        path_glob = options["path"]
        stale = options.get("stale")
        if not (options["all"] or options["vault"] or path_glob or stale):
            raise CommandError("choose the notes: --all, --vault NAME, --path GLOB or --stale")
        notes = Note.objects.all()
        described = "--all"
        if stale:
            notes = notes.filter(id__in=stale_note_ids())
            described = "--stale"
        if options["vault"]:
            vault = Vault.objects.filter(name=options["vault"]).first()
            if vault is None:
                known = ", ".join(Vault.objects.values_list("name", flat=True)[:10]) or "none"
                raise CommandError(
                    printable(f"unknown vault {options['vault']!r} (vaults: {known})")
                )
            notes = notes.filter(vault=vault)
            described = f"--vault {options['vault']}" + (" --stale" if stale else "")
        if path_glob:
            # Globs differ between databases' pattern languages: match in Python on paths only.
            ids = [
                nid
                for nid, path in notes.values_list("id", "path").iterator(chunk_size=5000)
                if fnmatchcase(path, path_glob)
            ]
            described = (described + " " if options["vault"] else "") + f"--path {path_glob}"
            return ids, described
        return notes, described

    def wait(self, job: Job) -> str:
        last = [""]

        def progress(current: Job) -> None:
            line = counts_line(jobs.item_counts(job_ids=[current.id]).get(current.id, {}))
            if line != last[0]:
                last[0] = line
                self.stdout.write(f"job {current.id} {current.state}: {line}")

        try:
            jobs.job_run(job_id=job.id, progress=progress)
        except KeyboardInterrupt:
            jobs.job_enqueue(job_id=job.id)
            raise CommandError(f"interrupted: job {job.id} handed to the workers") from None
        job.refresh_from_db()
        counts = jobs.item_counts(job_ids=[job.id]).get(job.id, {})
        summary = f"job {job.id} {job.state}: {counts_line(counts)}; cost ${job.cost}"
        if job.state == Job.State.CANCELED:
            raise CommandError(summary)
        return summary
