"""A real `manage.py qcluster` runs a parallel job: asyncio inside a django-q2 worker process."""

import pytest

from tests.curation.engine.test_qcluster import cluster_env, manage, running_qcluster  # noqa: F401


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_qcluster_runs_a_parallel_job(
    cluster_env, emulator, make_vault, tmp_path  # noqa: F811 (the imported fixture)
):
    env = {**cluster_env, "CURATION_CONCURRENCY": "3"}
    env.pop("REDIS_URL", None)
    emulator.configure(latency=0.05)
    root = make_vault(
        {f"topic {i}.md": f"# Topic {i}\n\nThe parallel{i}word note body.\n" for i in range(7)}
    )
    assert manage(env, "migrate", "--noinput").returncode == 0
    assert manage(env, "import_vault", str(root), "--name", "qc-parallel").returncode == 0
    queued = manage(env, "curate", "--vault", "qc-parallel", "--mode", "parallel")
    assert queued.returncode == 0, queued.stderr
    job_id = queued.stdout.strip().splitlines()[-1].split()[1]

    with running_qcluster(env, tmp_path / "qcluster.log"):
        waited = manage(env, "jobs", job_id, "--wait", "--timeout", "90", "--interval", "0.5")
        output = (tmp_path / "qcluster.log").read_text(errors="replace")
        assert waited.returncode == 0, waited.stdout + waited.stderr + output[-3000:]
        assert f"job {job_id}  succeeded  parallel  succeeded 7" in waited.stdout
        stats = emulator.stats()
        assert stats["messages"] == 7 and stats["batches"] == 0
        assert 1 <= stats["max_in_flight"] <= 3
