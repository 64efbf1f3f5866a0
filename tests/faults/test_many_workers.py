"""Two and three qcluster processes on one job, its task delivered that many times: no item twice.

Each qcluster has as many worker processes as there are copies of the task, so the copies
run at the same time whichever cluster's pusher takes them.
"""

import pytest

from tests.faults.test_worker_killed import FIELDS, finish

pytestmark = pytest.mark.slow


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
    # They did work side by side (else this test proves nothing).
    assert stats["max_in_flight"] >= 2


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
