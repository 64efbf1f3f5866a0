"""A throwaway deployment for one fault test: its own database, emulator and worker processes.

The database is a fresh SQLite file (or a fresh PostgreSQL database when DATABASE_URL points
at PostgreSQL), copied from a template migrated once per session. Workers are real
`manage.py qcluster` processes, each in its own process group so kill -9 takes all of it.
The emulator runs in this process and speaks real HTTP to them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANAGE = str(ROOT / "manage.py")
LETTERS = "abcdefghijklmnopqrstuvwxyz"
NOTES_SCRIPT = """
from pathlib import Path
from ingest.models import Note, Vault
from ingest import notes
root = Path({root!r})
vault = Vault.objects.create(name="faults", root=str(root))
rows = []
for i in range({n}):
    path = root / f"Note {{i:03d}}.md"
    data = path.read_bytes()
    body = data.decode().split("---\\n", 2)[2]
    rows.append(Note(vault=vault, path=path.name, title=path.stem, body=body, size=len(data),
                     frontmatter_raw="title: " + path.stem, frontmatter={{"title": path.stem}},
                     content_hash=notes.content_hash(data)))
Note.objects.bulk_create(rows)
"""
JOB_SCRIPT = """
from django.db import transaction
from curation.engine import jobs
from ingest.models import Note
with transaction.atomic():
    job = jobs.job_create(notes=Note.objects.values_list("id", flat=True), fields={fields!r},
                          mode={mode!r}, selection="fault suite")
    jobs.job_start(job_id=job.id)
    # Extra deliveries of the same task, as an at-least-once broker may make.
    for _ in range({copies} - 1):
        transaction.on_commit(lambda: jobs.job_enqueue(job_id=job.id))
print("job", job.id, "queued")
"""
RETRY_SCRIPT = """
from curation.engine import jobs
print("reset", jobs.job_retry_failed(job_id={job_id}))
"""


def word_for(i: int) -> str:
    """A word only note i contains (letters only, so the emulator keeps it as a keyword)."""
    return "zq" + LETTERS[i // 676 % 26] + LETTERS[i // 26 % 26] + LETTERS[i % 26] + "word"


def postgres_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://")) else None


def _pg_admin(url: str):
    import psycopg

    base = re.sub(r"/[^/]*$", "/postgres", url)
    return psycopg.connect(base, autocommit=True)


def _pg_url(url: str, name: str) -> str:
    return re.sub(r"/[^/]*$", f"/{name}", url)


def base_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST", "FAULT_")) and k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.faults.fault_settings",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        VAULTCMS_DEBUG="1",
        VAULTCMS_LOG_LEVEL="INFO",
        VAULTCMS_Q_LOG_LEVEL="INFO",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Template:
    """A migrated, empty database to copy for each test."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.pg = postgres_url()
        if self.pg:
            self.name = f"vaultcms_ftpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            with _pg_admin(self.pg) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
            self.url = _pg_url(self.pg, self.name)
        else:
            self.path = workdir / "template.sqlite3"
            self.url = f"sqlite:///{self.path}"
        subprocess.run(
            [sys.executable, MANAGE, "migrate", "--noinput", "-v", "0"],
            env=base_env(DATABASE_URL=self.url), cwd=ROOT, check=True, timeout=300,
            capture_output=True,
        )

    def copy(self, workdir: Path) -> tuple[str, object]:
        """(DATABASE_URL, handle) of a fresh copy."""
        if self.pg:
            name = f"vaultcms_fault_{os.getpid()}_{uuid.uuid4().hex[:8]}"
            with _pg_admin(self.pg) as conn:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.name}"')
            return _pg_url(self.pg, name), name
        path = workdir / f"fault-{uuid.uuid4().hex[:8]}.sqlite3"
        src, dst = sqlite3.connect(self.path), sqlite3.connect(path)
        with dst:
            src.backup(dst)
        src.close()
        dst.close()
        return f"sqlite:///{path}", path

    def drop(self, handle) -> None:
        if self.pg:
            with _pg_admin(self.pg) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{handle}" WITH (FORCE)')

    def close(self) -> None:
        if self.pg:
            self.drop(self.name)


class Site:
    """One deployment: database, environment, workers; queries go straight to the database."""

    def __init__(self, *, template: Template, workdir: Path, emulator, **env):
        self.template = template
        self.workdir = workdir
        self.url, self.handle = template.copy(workdir)
        self.emulator = emulator
        name = f"fault-{uuid.uuid4().hex[:10]}"
        self.env = base_env(
            DATABASE_URL=self.url,
            ANTHROPIC_BASE_URL=emulator.url,
            ANTHROPIC_API_KEY="sk-ant-fault-suite",
            VAULTCMS_Q_NAME=name,  # its own queue, even on a Redis shared with other tests
            VAULTCMS_CACHE_PREFIX=name,
            **env,
        )
        self.workers: list[tuple[subprocess.Popen, object]] = []
        self._db = None

    # -- commands and workers

    def manage(self, *args, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, MANAGE, *args], env=self.env, cwd=ROOT, capture_output=True,
            text=True, timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"manage.py {' '.join(args)} exited {result.returncode}\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def start_worker(self, **env) -> subprocess.Popen:
        log = (self.workdir / f"worker-{len(self.workers)}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, MANAGE, "qcluster"], env={**self.env, **{k: str(v) for k, v in env.items()}},
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.workers.append((process, log))
        return process

    def wait_workers_running(self, *, timeout: float = 90) -> None:
        """Until every started qcluster logs that it runs (they boot slowly on a busy machine)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.worker_logs().count("] running.") >= len(self.workers):
                return
            time.sleep(0.1)
        raise AssertionError(f"workers did not start\n{self.worker_logs()[-3000:]}")

    def kill9(self, process: subprocess.Popen) -> None:
        """SIGKILL the worker's whole process group (sentinel, workers, monitor, pusher)."""
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)

    def stop_workers(self) -> None:
        """End every worker group at once: the test is over and its database is thrown away."""
        for process, log in self.workers:
            if process.poll() is None:
                self.kill9(process)
            log.close()

    def worker_logs(self) -> str:
        return "\n".join(
            (self.workdir / f"worker-{i}.log").read_text(errors="replace")
            for i in range(len(self.workers))
        )

    def close(self) -> None:
        self.stop_workers()
        if self._db is not None:
            self._db.close()
            self._db = None
        self.template.drop(self.handle)

    # -- the vault and the job

    def make_vault(self, n: int) -> Path:
        root = self._write_notes(n)
        # Rows written by the ORM (as import would), so this suite does not hang on the importer.
        self.manage("shell", "-c", NOTES_SCRIPT.format(root=str(root), n=n))
        return root

    def _write_notes(self, n: int) -> Path:
        root = self.workdir / "vault"
        root.mkdir(exist_ok=True)
        for i in range(n):
            word = word_for(i)
            (root / f"Note {i:03d}.md").write_text(
                f"---\ntitle: Note {i:03d}\n---\nThe {word} method explains {word} in depth. "
                f"More about {word} here.\n",
                encoding="utf-8",
            )
        return root

    def make_job(self, n: int, *, fields: list[str], mode: str, copies: int = 1) -> int:
        """Notes and a queued job in one process start (the same services `curate` calls)."""
        self._write_notes(n)
        out = self.manage(
            "shell", "-c",
            NOTES_SCRIPT.format(root=str(self.workdir / "vault"), n=n)
            + JOB_SCRIPT.format(fields=fields, mode=mode, copies=copies),
        ).stdout.strip().splitlines()
        found = re.fullmatch(r"job (\d+) queued", out[-1])
        assert found, out
        return int(found.group(1))

    def retry_failed(self, job_id: int) -> int:
        """The service behind the admin's "Retry failed items" action."""
        out = self.manage("shell", "-c", RETRY_SCRIPT.format(job_id=job_id)).stdout.split()
        return int(out[-1])

    def curate(self, *args: str) -> int:
        """`curate --all ARGS` without --wait; returns the queued job's id."""
        out = self.manage("curate", "--all", *args).stdout.strip().splitlines()
        found = re.fullmatch(r"job (\d+) queued", out[-1])
        assert found, out
        return int(found.group(1))

    def wait_job(self, job_id: int, *, timeout: float) -> subprocess.CompletedProcess:
        """`jobs ID --wait --timeout`: the operator's door; exit 0 means every item succeeded."""
        return self.manage(
            "jobs", str(job_id), "--wait", "--timeout", str(timeout), "--interval", "0.2",
            timeout=timeout + 60, check=False,
        )

    def wait_final(self, job_id: int, *, timeout: float) -> str:
        rows = self.wait_for(
            "SELECT state IN ('succeeded', 'failed', 'canceled'), state FROM curation_job "
            "WHERE id=%s", job_id, timeout=timeout, what=f"job {job_id} to end",
        )
        return rows[0][1]

    # -- the database, read directly (no Django in this process)

    def query(self, sql: str, *params) -> list[tuple]:
        if self._db is None:
            if self.template.pg:
                import psycopg

                self._db = psycopg.connect(self.url, autocommit=True)
            else:
                self._db = sqlite3.connect(str(self.handle), timeout=30, isolation_level=None)
        if not self.template.pg:
            sql = sql.replace("%s", "?")
        cursor = self._db.execute(sql, params)
        return list(cursor.fetchall())

    def wait_for(self, sql: str, *params, timeout: float = 30, what: str = "") -> list[tuple]:
        """Poll until the query returns a row with a true first column."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.query(sql, *params)
            if rows and rows[0][0]:
                return rows
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what or sql}\n{self.worker_logs()[-4000:]}")

    def item_states(self, job_id: int) -> dict[str, int]:
        return dict(self.query(
            "SELECT state, COUNT(*) FROM curation_item WHERE job_id=%s GROUP BY state", job_id
        ))

    # -- the invariants

    def check_every_note_has_its_own_suggestions(self, job_id: int, *, fields: list[str]) -> None:
        notes = dict(self.query("SELECT id, path FROM ingest_note WHERE state='ok'"))
        rows = self.query(
            "SELECT s.note_id, s.field, s.value, i.note_id FROM curation_suggestion s "
            "JOIN curation_item i ON i.id = s.item_id WHERE s.job_id=%s", job_id
        )
        seen: dict[tuple[int, str], int] = {}
        for note_id, field, value, item_note in rows:
            assert note_id == item_note, "a suggestion landed on another note than its item's"
            seen[(note_id, field)] = seen.get((note_id, field), 0) + 1
            if not self.template.pg:  # SQLite hands JSON back as text, psycopg decodes it
                value = json.loads(value)
            index = int(re.search(r"Note (\d+)\.md", notes[note_id]).group(1))
            word = word_for(index)
            text = json.dumps(value)
            if field in ("tags", "description"):
                assert word in text, f"{notes[note_id]} got {field} {text}, not from its own text"
        expected = {(n, f) for n in notes for f in fields}
        assert set(seen) == expected, f"missing {sorted(expected - set(seen))[:5]}"
        assert all(count == 1 for count in seen.values()), "a field was suggested twice"

    def check_sent_once(self, *, allow_resend: set[str] = frozenset()) -> dict:
        """Each note went to the API exactly once (except notes whose first answer failed)."""
        stats = self.emulator.stats()
        twice = {path: n for path, n in stats["notes"].items() if n != 1 and path not in allow_resend}
        assert not twice, f"notes sent more than once: {twice}"
        return stats
