"""Serve the built-in Anthropic Messages + Message Batches emulator (see curation/emulator/)."""

from django.core.management.base import BaseCommand, CommandError

from curation.emulator import Emulator


class Command(BaseCommand):
    help = (
        "Serve the built-in Anthropic API emulator (Messages and Message Batches) so the app "
        "runs without an API key: point ANTHROPIC_BASE_URL at http://HOST:PORT. "
        "Runtime control: GET /_emulator/stats, GET|POST /_emulator/config, POST /_emulator/reset. "
        "With --verbosity 2, one line per request."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8765, help="Port (default 8765; 0: any free).")
        parser.add_argument("--latency", type=float, default=0.0,
                            help="Seconds added to every API request.")
        parser.add_argument("--batch-seconds", type=float, default=5.0,
                            help="Seconds a batch stays in_progress before it ends (0: at once).")
        parser.add_argument("--cancel-seconds", type=float, default=0.5,
                            help="Seconds a canceled batch stays `canceling`.")
        for kind, what in (
            ("429", "messages calls answered 429 rate_limit_error"),
            ("529", "messages calls answered 529 overloaded_error"),
            ("500", "messages calls answered 500 api_error"),
            ("errored", "batch items that end errored"),
            ("expired", "batch items that end expired"),
            ("malformed", "answers without a usable tool block"),
        ):
            parser.add_argument(f"--fault-{kind}", type=float, default=0.0, metavar="SHARE",
                                help=f"Share (0..1) of {what}.")
        parser.add_argument("--fault-attempts", type=int, default=1,
                            help="Faults hit a note's first N attempts (0: every attempt).")
        parser.add_argument("--retry-after", type=float, default=1.0,
                            help="Seconds sent as retry-after with injected faults.")
        parser.add_argument("--rpm", type=int, default=0,
                            help="Requests allowed per minute; more get 429 (0: no limit).")
        parser.add_argument("--itpm", type=int, default=0,
                            help="Input tokens allowed per minute; more get 429 (0: no limit).")
        parser.add_argument("--rate-window", type=float, default=60.0,
                            help="Length of the --rpm/--itpm window in seconds.")
        parser.add_argument("--seed", type=int, default=0, help="Seed for faults and result order.")

    def handle(self, *args, **opts):
        for key in ("latency", "batch_seconds", "cancel_seconds", "retry_after", "rate_window"):
            if opts[key] < 0:
                raise CommandError(f"--{key.replace('_', '-')} must not be negative")
        shares = {f"fault_{k}": opts[f"fault_{k}"]
                  for k in ("429", "529", "500", "errored", "expired", "malformed")}
        for key, value in shares.items():
            if not 0 <= value <= 1:
                raise CommandError(f"--{key.replace('_', '-')} must be a share between 0 and 1")
        try:
            emulator = Emulator(
                host=opts["host"], port=opts["port"], latency=opts["latency"],
                batch_seconds=opts["batch_seconds"], cancel_seconds=opts["cancel_seconds"],
                fault_attempts=opts["fault_attempts"], retry_after=opts["retry_after"],
                rpm=opts["rpm"], itpm=opts["itpm"], rate_window=opts["rate_window"], seed=opts["seed"], **shares,
            )
            emulator.bind()
        except OSError as exc:
            raise CommandError(
                f"cannot listen on {opts['host']}:{opts['port']}: {exc.strerror}"
            ) from None
        if opts["verbosity"] >= 2:  # one line per request, for the demo's log
            def log(line: str) -> None:
                self.stdout.write(line)
                self.stdout.flush()

            emulator.log = log
        self.stdout.write(f"Anthropic API emulator listening on {emulator.url}", ending="\n")
        self.stdout.flush()
        try:
            emulator.serve_forever()
        except KeyboardInterrupt:
            pass
        return None
