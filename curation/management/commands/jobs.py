"""`jobs [ID] [--wait] [--timeout SECONDS]`: recent jobs, or one job (optionally until it ends)."""

import time

from django.core.management.base import BaseCommand, CommandError

from curation.engine import jobs
from curation.management.commands.curate import counts_line
from curation.models import Item, Job

RECENT = 20


def job_line(job: Job, counts: dict[str, int]) -> str:
    cost = job.cost if job.is_final else jobs.job_cost(job_id=job.id)
    mode = job.mode or job.requested_mode
    line = f"job {job.id}  {job.state}  {mode}  {counts_line(counts)}  cost ${cost}"
    if job.error:  # why it ended at once (the API's reason) and the API's request-id
        line += f"  error: {job.error}" + (f" (request-id {job.request_id})" if job.request_id else "")
    return line


class Command(BaseCommand):
    help = (
        "Without ID: one line per recent job (id, state, mode, per-state item counts, cost). "
        "With ID: that job and its batches; --wait blocks until it reaches a final state, then "
        "exits 0 when every item succeeded, 1 otherwise, 2 on --timeout."
    )

    def add_arguments(self, parser):
        parser.add_argument("id", nargs="?", type=int, help="a job id")
        parser.add_argument("--wait", action="store_true", help="wait until the job ends")
        parser.add_argument(
            "--timeout", type=float, default=None, metavar="SECONDS",
            help="with --wait: give up after this long (exit 2)",
        )  # fmt: skip
        parser.add_argument(
            "--interval", type=float, default=1.0, help="seconds between checks with --wait"
        )

    def handle(self, *args, id=None, wait=False, timeout=None, interval=1.0, **options):
        if id is None:
            if wait:
                raise CommandError("--wait needs a job ID")
            recent = list(Job.objects.all()[:RECENT])
            counts = jobs.item_counts(job_ids=[j.id for j in recent])
            for job in recent:
                self.stdout.write(job_line(job, counts.get(job.id, {})))
            n = len(recent)
            return f"{n} recent job{'' if n == 1 else 's'}" if recent else "no jobs yet"
        job = Job.objects.filter(id=id).first()
        if job is None:
            raise CommandError(f"no job with id {id}")
        if wait:
            deadline = None if timeout is None else time.monotonic() + timeout
            last = ""
            while not job.is_final:
                line = job_line(job, jobs.item_counts(job_ids=[job.id]).get(job.id, {}))
                if line != last:
                    self.stdout.write(line)
                    last = line
                if deadline is not None and time.monotonic() >= deadline:
                    raise CommandError(
                        f"timeout: job {job.id} still {job.state} after {timeout:g}s",
                        returncode=2,
                    )
                time.sleep(
                    max(0.0, min(interval, deadline - time.monotonic()))
                    if deadline is not None
                    else interval
                )
                job.refresh_from_db()
        counts = jobs.item_counts(job_ids=[job.id]).get(job.id, {})
        for batch in job.batches.all():
            self.stdout.write(
                f"  batch {batch.id} {batch.provider_id or '-'} {batch.state} "
                f"requests={batch.request_count} {batch.request_counts or ''}".rstrip()
            )
        line = job_line(job, counts)
        all_succeeded = counts.get(Item.State.SUCCEEDED, 0) == sum(counts.values())
        if wait and not (job.state == Job.State.SUCCEEDED and all_succeeded):
            raise CommandError(line, returncode=1)
        return line
