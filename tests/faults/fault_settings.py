"""Settings for the fault suite's subprocesses: production settings with short timers.

Only timings change: a task handed back after 4 s instead of 11 minutes, polls every
fraction of a second, so a crash and its recovery fit in a test. Set by the FAULT_* env.
"""

import os

from vaultcms.settings import *  # noqa: F403
from vaultcms.settings import Q_CLUSTER, env_int

_timeout = env_int("FAULT_TASK_TIMEOUT", 20)
Q_CLUSTER = {
    **Q_CLUSTER,
    "timeout": _timeout,
    # A task taken by a worker that died is handed out again after this long (ORM broker).
    # Shorter than the timeout on purpose: a task is redelivered while a slow copy may still
    # run, which the job engine must (and does) tolerate; it keeps recovery to seconds.
    "retry": env_int("FAULT_TASK_RETRY", 6),
    "max_attempts": 0,  # the job engine, not django-q2, decides when to give up
}
if "orm" in Q_CLUSTER:
    Q_CLUSTER["poll"] = 0.1
CURATION_TASK_BUDGET = float(os.environ.get("FAULT_TASK_BUDGET", "3"))
CURATION_POLL_MIN_SECONDS = float(os.environ.get("FAULT_POLL_MIN", "0.2"))
CURATION_POLL_SECONDS = int(os.environ.get("FAULT_POLL_MAX", "1"))
# A killed worker's lease lapses after 3 s; a queued task not started in 5 s is queued again.
CURATION_LEASE_SECONDS = float(os.environ.get("FAULT_LEASE", "3"))
CURATION_QUEUED_SECONDS = float(os.environ.get("FAULT_QUEUED", "5"))
CURATION_SDK_MAX_RETRIES = 0
CURATION_TIMEOUT_SECONDS = float(os.environ.get("FAULT_HTTP_TIMEOUT", "10"))
