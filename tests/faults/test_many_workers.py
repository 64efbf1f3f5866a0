"""Two and three qcluster processes, one job's task delivered that many times: one run works the
job at a time (its lease), the other copies leave it, and no item is sent or applied twice.

Each qcluster has as many worker processes as there are copies of the task, so the copies
start at the same time whichever cluster's pusher takes them.
"""

import pytest

from tests.faults.test_worker_killed import FIELDS, finish

pytestmark = pytest.mark.slow

LEFT = "is leased to another run: left to it"


@pytest.mark.parametrize("clusters", [2, 3])
def test_realtime_job_shared_by_clusters(site, clusters):
    n = 9
    s = site(VAULTCMS_WORKERS=clusters)
    s.emulator.configure(latency=0.5)
    for _ in range(clusters):  # all up before the job exists, so they share it
        s.start_worker()
    s.wait_workers_running()
    job_id = s.make_job(n, fields=FIELDS, mode="sync", copies=clusters)
    finish(s, job_id, n=n)
    stats = s.check_sent_once()
    assert stats["messages"] == n
    assert s.query("SELECT MAX(attempts) FROM curation_item WHERE job_id=%s", job_id)[0][0] == 1
    # The copies started while the first held the lease, and left: one call at a time.
    assert LEFT in s.worker_logs()
    assert stats["max_in_flight"] == 1


@pytest.mark.parametrize("clusters", [2, 3])
def test_batch_job_shared_by_clusters(site, clusters):
    n = 12
    s = site(VAULTCMS_WORKERS=clusters, CURATION_BATCH_SIZE=3)
    s.emulator.configure(latency=0.3, batch_seconds=1)
    for _ in range(clusters):
        s.start_worker()
    s.wait_workers_running()
    job_id = s.make_job(n, fields=FIELDS, mode="batch", copies=clusters)
    finish(s, job_id, n=n)
    stats = s.check_sent_once()
    assert stats["batches"] == 4 and stats["batch_requests"] == n
    rows = s.query("SELECT state, COUNT(*) FROM curation_batch WHERE job_id=%s GROUP BY state", job_id)
    assert dict(rows) == {"applied": 4}
    assert LEFT in s.worker_logs()
