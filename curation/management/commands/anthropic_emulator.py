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
        # What the real API refuses (curation/emulator/refusals.py); scripted endpoint faults
        # are set over HTTP: POST /_emulator/config {"script": [...]}.
        parser.add_argument("--api-key", default="",
                            help="Accept only this key; any other gets 401 (default: any key).")
        parser.add_argument("--permission-denied", action="store_true",
                            help="Answer every API call 403 permission_error.")
        parser.add_argument("--models", default="",
                            help="Known models, comma-separated; '*': any (default: the API's).")
        parser.add_argument("--lenient-params", action="store_true",
                            help="Accept unknown top-level parameters (the API answers 400).")
        parser.add_argument("--batch-create-rpm", type=int, default=0,
                            help="Batch creates allowed per window; more get 429 (0: no limit).")
        parser.add_argument("--otpm", type=int, default=0,
                            help="Output tokens allowed per window; more get 429 (0: no limit).")
        parser.add_argument("--expire-seconds", type=float, default=24 * 3600.0,
                            help="A batch not ended this long after creation expires (24 h).")
        parser.add_argument("--retention-seconds", type=float, default=29 * 24 * 3600.0,
                            help="Results can be downloaded this long after creation (29 days).")

    def handle(self, *args, **opts):
        for key in ("latency", "batch_seconds", "cancel_seconds", "retry_after", "rate_window",
                    "expire_seconds", "retention_seconds"):
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
                api_key=opts["api_key"], permission_denied=opts["permission_denied"],
                models=opts["models"], strict_params=not opts["lenient_params"],
                batch_create_rpm=opts["batch_create_rpm"], otpm=opts["otpm"],
                expire_seconds=opts["expire_seconds"], retention_seconds=opts["retention_seconds"],
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
