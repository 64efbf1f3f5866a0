"""Settings from the environment: production checks, .env loading, the django-q2 broker.

Each case runs in a subprocess, because settings are read once per process.
"""

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MANAGE = ROOT / "manage.py"
STRIPPED = {
    "DATABASE_URL", "REDIS_URL", "VAULTCMS_DEBUG", "VAULTCMS_SECRET_KEY", "VAULTCMS_ALLOWED_HOSTS",
    "VAULTCMS_TEST_DB_NAME", "VAULTCMS_STATIC_ROOT", "CURATION_MODEL", "CURATION_BATCH_SIZE",
    "DJANGO_SETTINGS_MODULE", "VAULTCMS_SSL_REDIRECT", "VAULTCMS_SECURE_COOKIES",
}  # fmt: skip


def clean_env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in STRIPPED}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'settings.sqlite3'}"
    return {**env, **extra}


def production_env(tmp_path: Path, **extra: str) -> dict:
    return clean_env(
        tmp_path,
        VAULTCMS_DEBUG="0",
        VAULTCMS_SECRET_KEY=secrets.token_urlsafe(50),
        VAULTCMS_ALLOWED_HOSTS="vault.example.com",
        **extra,
    )


def django_eval(env: dict, code: str, cwd: Path = ROOT) -> dict:
    """Run `code` (which sets `out`) after django.setup() and return `out` as JSON."""
    script = (
        "import json, os, django\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'vaultcms.settings')\n"
        "django.setup()\n" + code + "\nprint(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_check_deploy_passes_with_production_settings(tmp_path):
    proc = subprocess.run(
        [sys.executable, MANAGE, "check", "--deploy", "--fail-level", "DEBUG"],
        env=production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "System check identified no issues" in proc.stdout
    assert "WARNING" not in proc.stdout + proc.stderr


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = production_env(tmp_path)
    del env["VAULTCMS_SECRET_KEY"]
    proc = subprocess.run(
        [sys.executable, MANAGE, "check"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0 and "VAULTCMS_SECRET_KEY must be set" in proc.stderr


def test_dotenv_is_read_but_the_environment_always_wins(tmp_path):
    # A copy of the settings package, so the test's .env never touches the real project root.
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "vaultcms", project / "vaultcms", ignore=ignore)
    (project / ".env").write_text(
        "CURATION_MODEL=model-from-dotenv\nCURATION_BATCH_SIZE=7\n"
        "VAULTCMS_ALLOWED_HOSTS=dotenv.example\n",
        encoding="utf-8",
    )
    env = clean_env(tmp_path, CURATION_MODEL="model-from-env", PYTHONPATH=str(project))
    script = (
        "import json\nimport vaultcms.settings as s\n"
        "print(json.dumps([s.CURATION_MODEL, s.CURATION_BATCH_SIZE, s.ALLOWED_HOSTS,"
        " str(s.BASE_DIR)]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=project, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ["model-from-env", 7, ["dotenv.example"], str(project)]


def test_sqlite_is_configured_for_a_web_process_beside_workers(tmp_path):
    out = django_eval(
        clean_env(tmp_path),
        "from django.db import connection\n"
        "with connection.cursor() as c:\n"
        "    c.execute('PRAGMA journal_mode'); mode = c.fetchone()[0]\n"
        "    c.execute('PRAGMA busy_timeout'); busy = c.fetchone()[0]\n"
        "    c.execute('PRAGMA synchronous'); sync = c.fetchone()[0]\n"
        "out = [mode, busy, sync, connection.settings_dict['OPTIONS']['transaction_mode']]",
    )
    assert out == ["wal", 30000, 1, "IMMEDIATE"]  # synchronous 1 = NORMAL


def test_atomic_blocks_take_the_write_lock_at_begin(tmp_path):
    # With IMMEDIATE, an open atomic block (even before it writes) holds the write lock, so
    # two processes never both read and then deadlock upgrading to write.
    out = django_eval(
        clean_env(tmp_path),
        "import sqlite3\n"
        "from django.db import connection, transaction\n"
        "from django.core.management import call_command\n"
        "call_command('migrate', 'contenttypes', verbosity=0)\n"
        "with transaction.atomic():\n"
        "    list(connection.cursor().execute('SELECT 1'))\n"
        "    other = sqlite3.connect(connection.settings_dict['NAME'], timeout=0,\n"
        "                            isolation_level=None)\n"
        "    try:\n"
        "        other.execute('BEGIN IMMEDIATE'); out = 'not locked'\n"
        "    except sqlite3.OperationalError as exc:\n"
        "        out = str(exc)\n"
        "    other.close()\n",
    )
    assert out == "database is locked"


def test_django_q_uses_the_orm_broker_by_default(tmp_path):
    out = django_eval(
        clean_env(tmp_path),
        "from django_q.conf import Conf\n"
        "from django_q.brokers import get_broker\n"
        "from django.conf import settings\n"
        "out = [type(get_broker()).__name__, Conf.ORM, Conf.TIMEOUT, Conf.RETRY,\n"
        "       Conf.MAX_ATTEMPTS, settings.CACHES['default']['BACKEND']]",
    )
    broker, orm, timeout, retry, attempts, cache = out
    assert (broker, orm) == ("ORM", "default")
    assert 0 < timeout < retry and 1 <= attempts <= 10
    assert cache.endswith("LocMemCache")


def test_django_q_and_the_cache_use_redis_when_redis_url_is_set(tmp_path):
    out = django_eval(
        clean_env(tmp_path, REDIS_URL="redis://127.0.0.1:6379/5"),
        "from django_q.conf import Conf\n"
        "from django_q.brokers import get_broker\n"
        "from django.conf import settings\n"
        "out = [type(get_broker()).__name__, Conf.ORM, Conf.REDIS, Conf.TIMEOUT < Conf.RETRY,\n"
        "       settings.CACHES['default']['BACKEND'], settings.CACHES['default']['LOCATION']]",
    )
    assert out == [
        "Redis",
        None,
        "redis://127.0.0.1:6379/5",
        True,
        "django.core.cache.backends.redis.RedisCache",
        "redis://127.0.0.1:6379/5",
    ]


@pytest.mark.parametrize("name", ["VAULTCMS_TASK_TIMEOUT"])
def test_task_timeout_stays_below_retry_when_configured(tmp_path, name):
    out = django_eval(
        clean_env(tmp_path, **{name: "30"}),
        "from django_q.conf import Conf\nout = [Conf.TIMEOUT, Conf.RETRY]",
    )
    assert out[0] == 30 and out[1] > out[0]


def test_every_environment_variable_is_in_the_readme():
    """A setting read from the environment is one a user can set: the README must name it."""
    import re

    source = (ROOT / "vaultcms" / "settings.py").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    names = set(re.findall(r"""(?:env_\w+|os\.environ\.get|os\.environ\[)\(?["']([A-Z][A-Z0-9_]+)["']""", source))
    assert {"DATABASE_URL", "CURATION_MODEL", "CURATION_POLL_MIN_SECONDS"} <= names
    missing = sorted(name for name in names if f"`{name}`" not in readme)
    assert not missing, f"settings read from the environment but not in README.md: {missing}"


def test_code_reads_no_undeclared_setting():
    """Every setting is declared in vaultcms/settings.py, so none hides behind a getattr default."""
    offenders = []
    for folder in ("curation", "ingest", "vaultcms"):
        for path in (ROOT / folder).rglob("*.py"):
            if "getattr(settings," in path.read_text(encoding="utf-8"):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"getattr(settings, ...) with a default in: {offenders}"
