"""Parallel mode against the emulator: wall time vs the ideal, and the share of 429 answers.

    .venv/bin/python bench/parallel_bench.py [--items 96] [--concurrency 8] [--latency 0.5]
                                [--rate-items 120] [--rate-latency 0.25] [--rpm 40] [--window 5]

Runs real parallel jobs (`job_create(mode="parallel")` + `job_run`) on a temp SQLite database
(or DATABASE_URL) against the built-in emulator, served from its own process as the API
would be, with a fixed latency L per call. Two scenarios:

- latency-bound: N items at concurrency C and no rate limit. Ideal = ceil(N / C) * L.
- rate-limit-bound: the same with a limit of R requests per W-second window (the emulator
  counts a request when it is answered, over a sliding window). No schedule can answer the
  N-th request before floor((N - 1) / R) windows have passed, and the last window's r
  requests need ceil(r / C) * L: ideal = max(that, ceil(N / C) * L). The window stands in
  for the API's minute, shortened so the bench takes seconds; the limiter spends about one
  call latency per window on a probe call after each reset (so a 3 s window shows ~1.2x).

Prints wall time / ideal (target <= 1.2) and the share of calls answered 429 (target <= 1%).
"""

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_RATIO = 1.2
TARGET_429 = 0.01


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def control(url: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    method = "POST" if data is not None else "GET"
    request = urllib.request.Request(url + path, data=data, method=method)
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def start_emulator() -> tuple[subprocess.Popen, str]:
    port = free_port()
    code = (
        "import sys; from curation.emulator import Emulator; "
        f"Emulator(host='127.0.0.1', port={port}, batch_seconds=0).serve_forever()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            control(url, "/_emulator/config")
            return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the emulator did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=96, help="N, latency-bound scenario")
    parser.add_argument("--concurrency", type=int, default=8, help="C (CURATION_CONCURRENCY)")
    parser.add_argument("--latency", type=float, default=0.5, help="L, seconds per call")
    parser.add_argument("--rate-items", type=int, default=120, help="N, rate-limited scenario")
    parser.add_argument("--rate-latency", type=float, default=0.25, help="L, rate-limited")
    parser.add_argument("--rpm", type=int, default=40, help="R, requests per window")
    parser.add_argument("--window", type=float, default=5.0, help="W, the window in seconds")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="parallel-bench-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{work / 'bench.sqlite3'}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vaultcms.settings")
    os.environ.setdefault("VAULTCMS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("VAULTCMS_DEBUG", "0")  # as in production: no query log
    os.environ.setdefault("VAULTCMS_SECRET_KEY", f"bench-{os.getpid()}-{time.time_ns()}")
    proc, url = start_emulator()
    os.environ["ANTHROPIC_BASE_URL"] = url
    os.environ["ANTHROPIC_API_KEY"] = "sk-ant-bench-emulator"
    try:
        import django

        django.setup()
        import logging

        logging.disable(logging.INFO)
        from django.conf import settings
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from curation.engine import jobs
        from curation.models import Item, Job
        from ingest.models import Note, Vault

        c = args.concurrency
        settings.CURATION_CONCURRENCY = c
        vault = Vault.objects.create(name=f"bench-{time.time_ns()}", root=str(work))

        def make_notes(tag: str, n: int) -> list[int]:
            rows = []
            for i in range(n):
                word = f"{tag}topic{i}"
                body = f"The {word} method explains {word} and agents in depth.\n" * 5
                rows.append(Note(vault=vault, path=f"{tag}/{word}.md", folder=tag, title=word,
                                 body=body, size=len(body), tags=["bench"]))
            return [note.id for note in Note.objects.bulk_create(rows)]

        def scenario(name: str, *, n: int, latency: float, rpm: int, window: float) -> bool:
            ids = make_notes(name, n)
            control(url, "/_emulator/reset", {})
            control(url, "/_emulator/config", {"latency": latency, "rpm": rpm,
                                               "rate_window": window})
            job = jobs.job_create(notes=ids, fields=["tags", "description"], mode="parallel")
            started, cpu = time.perf_counter(), time.process_time()
            jobs.job_run(job_id=job.id)
            wall = time.perf_counter() - started
            cpu_ms = (time.process_time() - cpu) / n * 1000
            job.refresh_from_db()
            stats = control(url, "/_emulator/stats")
            latency_bound = math.ceil(n / c) * latency
            if rpm:
                windows = (n - 1) // rpm
                last = n - windows * rpm
                rate_bound = windows * window + math.ceil(last / c) * latency
            else:
                rate_bound = 0.0
            ideal = max(latency_bound, rate_bound)
            ratio = wall / ideal
            share = stats["status_429"] / max(1, stats["messages"])
            ok = Item.objects.filter(job=job, state=Item.State.SUCCEEDED).count()
            bound = "rate limit" if rate_bound > latency_bound else "latency"
            limit = f"{rpm} req/{window:g}s" if rpm else "none"
            print(f"{name:<12} N={n} C={c} L={latency:g}s limit={limit:<12} "
                  f"wall={wall:6.2f}s ideal={ideal:6.2f}s ({bound}-bound) "
                  f"ratio={ratio:4.2f} (target <= {TARGET_RATIO}) "
                  f"429s={stats['status_429']}/{stats['messages']}={share:.1%} "
                  f"(target <= {TARGET_429:.0%}) max_in_flight={stats['max_in_flight']} "
                  f"app_cpu={cpu_ms:.1f}ms/item "
                  f"succeeded={ok}/{n} job={job.state}")
            return (ratio <= TARGET_RATIO and share <= TARGET_429 and ok == n
                    and job.state == Job.State.SUCCEEDED and stats["max_in_flight"] <= c)

        # A worker's first call loads the SDK's lazily imported modules: not part of a run.
        control(url, "/_emulator/config", {"latency": 0, "rpm": 0})
        jobs.job_run(job_id=jobs.job_create(notes=make_notes("warmup", 2), mode="parallel").id)
        good = scenario("latency", n=args.items, latency=args.latency, rpm=0, window=60.0)
        good &= scenario("ratelimit", n=args.rate_items, latency=args.rate_latency,
                         rpm=args.rpm, window=args.window)
        print("parallel_bench:", "PASS" if good else "FAIL (a target was missed)")
        return 0 if good else 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
