"""`watch --vault NAME [--enable | --disable] [--every MIN] [--at HH:MM] [--limit USD
--period month|week] [--once]`, `watch --list`: watched vaults, by the scheduler or by cron."""

import argparse
import datetime
from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from curation.engine import jobs
from curation.engine.watch import dollars, watch_allowance, watch_configure, watch_run
from curation.management.commands.curate import counts_line
from curation.models import Job, Watch
from ingest.models import Vault

HELP = """\
Watch a vault: import it every few minutes, and once a day queue every note that is new or
changed since its last curation (and has no suggestion awaiting review) into one batch job,
within a spending limit per month or week.

Two ways to run it:
  1. The scheduler (nothing else to set up): `watch --vault NAME --enable` makes a django-q2
     schedule that runs wherever a worker runs (`manage.py qcluster`). It imports every
     --every minutes (default 15) and curates at --at (default 02:00, TIME_ZONE).
  2. cron, without the scheduler: leave the watch disabled and run the passes yourself, e.g.
         */15 * * * *  cd /srv/vaultcms && .venv/bin/python manage.py import_vault /srv/Notes --name Notes
         0 2 * * *     cd /srv/vaultcms && .venv/bin/python manage.py watch --vault Notes --once --wait
     --once imports and curates now, whatever the time; --wait then runs the job to its end
     in this process (without it a worker runs it). Enabled or not, two passes never overlap,
     and the limit (--limit, --period) holds either way.
"""


def time_of_day(value: str) -> datetime.time:
    try:
        return datetime.datetime.strptime(value, "%H:%M").time()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a time of day as HH:MM") from None


def dollar_amount(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of US dollars") from None
    if not amount.is_finite() or amount < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of US dollars")
    return amount


def watch_line(watch: Watch) -> str:
    """One watch in one line: its settings, its last runs and what the last curation did."""
    now = timezone.now()
    state = "enabled" if watch.enabled else "disabled"
    parts = [f"{watch.vault.name}: {state}, import every {watch.every_minutes} min, "
             f"curate at {watch.curate_at:%H:%M}"]  # fmt: skip
    allowance = watch_allowance(watch=watch, now=now)
    if allowance is not None:
        parts.append(f"{allowance.label} ({dollars(allowance.spent)} spent this {watch.period})")
    for label, when in (("imported", watch.last_import_at), ("curated", watch.last_curate_at)):
        if when:
            parts.append(f"{label} {timezone.localtime(when):%Y-%m-%d %H:%M}")
    if watch.outcome:
        parts.append(f"last: {watch.outcome}")
    return "; ".join(parts)


class Command(BaseCommand):
    help = HELP

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the cron example
        return parser

    def add_arguments(self, parser):
        parser.add_argument("--vault", metavar="NAME", help="the vault (as import_vault named it)")
        parser.add_argument("--list", action="store_true", dest="list_all", help="every watch, its last runs")
        on = parser.add_mutually_exclusive_group()
        on.add_argument("--enable", action="store_true", help="run on the scheduler")
        on.add_argument("--disable", action="store_true", help="remove its schedule")
        parser.add_argument("--every", type=int, metavar="MIN", help="import every MIN minutes")
        parser.add_argument("--at", type=time_of_day, metavar="HH:MM",
                            help="curate each day at this local time (TIME_ZONE)")  # fmt: skip
        parser.add_argument("--limit", type=dollar_amount, metavar="USD",
                            help="US dollars its jobs may spend per period (0: no limit)")  # fmt: skip
        parser.add_argument("--period", choices=Watch.Period.values, help="of the limit (month)")
        parser.add_argument("--once", action="store_true",
                            help="one pass now: import, then queue the new and changed notes")  # fmt: skip
        parser.add_argument("--wait", action="store_true",
                            help="with --once: run its job here to its end (no worker needed)")  # fmt: skip

    def handle(self, *args, vault, list_all, enable, disable, every, at, limit, period, once, wait,
               **options):
        if list_all:
            watches = Watch.objects.select_related("vault").order_by("vault__name")
            for watch in watches:
                self.stdout.write(watch_line(watch))
            return f"{len(watches)} watched vault(s)"
        if not vault:
            raise CommandError("give --vault NAME (or --list)")
        try:
            target = Vault.objects.get(name=vault)
        except Vault.DoesNotExist:
            raise CommandError(f"no vault named {vault!r} (import_vault PATH --name {vault!r})") from None
        try:
            watch = watch_configure(
                vault=target, enabled=True if enable else False if disable else None,
                every_minutes=every, curate_at=at, limit=limit, period=period,
            )  # fmt: skip
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if wait and not once:
            raise CommandError("--wait goes with --once")
        if once:
            before = watch.last_job_id
            self.stdout.write(watch_run(watch_id=watch.pk, force_curate=True, start=not wait))
            watch.refresh_from_db()
            if wait and watch.last_job_id and watch.last_job_id != before:
                jobs.job_run(job_id=watch.last_job_id)
                job = Job.objects.get(pk=watch.last_job_id)
                counts = jobs.item_counts(job_ids=[job.id]).get(job.id, {})
                self.stdout.write(f"job {job.id} {job.state}: {counts_line(counts)}; cost ${job.cost}")
        return watch_line(watch)
