"""One SQLite file, a web-like writer and two worker-like writers at once: never "locked".

Each process reads and then writes inside one transaction, the pattern that deadlocks
under SQLite's default deferred transactions; the real settings (WAL, IMMEDIATE, busy
timeout) must make every one of them wait its turn instead.
"""

import json
import subprocess
import sys
import time

from tests.vaultcms.test_settings import MANAGE, ROOT, clean_env

WRITER = r"""
import json, os, sys, time
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vaultcms.settings")
django.setup()
from django.db import OperationalError, transaction
from ingest.models import Note, Vault

role, start_at, rounds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
vault = Vault.objects.get(name="shared")
while time.time() < start_at:
    time.sleep(0.005)
errors, done = [], 0
for i in range(rounds):
    try:
        with transaction.atomic():
            n = Note.objects.filter(vault=vault).count()  # read first, then write
            if role == "web":
                Vault.objects.filter(id=vault.id).update(root=f"/vault/{n}")
                Note.objects.filter(vault=vault, path__startswith="w").update(title=f"web {i}")
            else:
                Note.objects.create(vault=vault, path=f"{role}/{i}.md", title=n, body="x" * 2000)
                Note.objects.filter(vault=vault, path__startswith=role).update(size=i)
        done += 1
    except OperationalError as exc:
        errors.append(str(exc))
print(json.dumps({"role": role, "done": done, "errors": errors[:5], "n_errors": len(errors)}))
"""


def test_web_and_two_workers_never_see_database_is_locked(tmp_path):
    env = clean_env(tmp_path)
    subprocess.run([sys.executable, MANAGE, "migrate", "-v0"], env=env, check=True, timeout=120)
    setup = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'vaultcms.settings');"
        " django.setup(); from ingest.models import Vault;"
        " Vault.objects.create(name='shared', root='/')"
    )
    subprocess.run([sys.executable, "-c", setup], env=env, check=True, cwd=ROOT, timeout=60)

    start_at = time.time() + 3  # all three start hammering together, after their imports
    rounds = 100
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, role, str(start_at), str(rounds)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for role in ("web", "worker1", "worker2")
    ]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for result in results:
        assert result["n_errors"] == 0, result
        assert result["done"] == rounds
