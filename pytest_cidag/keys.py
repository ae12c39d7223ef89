"""Every stash key of the plugin, in one place: what it holds, where, and who sets it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_cidag.caching import JobCache, Verdict
    from pytest_cidag.core.live import LiveTerminal
    from pytest_cidag.core.reaper import Reaper
    from pytest_cidag.core.runner import JobResult
    from pytest_cidag.core.settings import Settings
    from pytest_cidag.outcomes import OutcomeRecorder
    from pytest_cidag.retrying import Attempt
    from pytest_cidag.state import RunGraph
    from pytest_cidag.xdist.worker import WorkerSide

#: config: the settings, resolved once in ``pytest_configure``.
SETTINGS_KEY: pytest.StashKey[Settings] = pytest.StashKey()
#: config: this process's job graph and selection (:class:`pytest_cidag.state.RunGraph`).
RUN_KEY: pytest.StashKey[RunGraph] = pytest.StashKey()
#: config: the outcomes of this process's nodes (:class:`pytest_cidag.outcomes.OutcomeRecorder`).
OUTCOMES_KEY: pytest.StashKey[OutcomeRecorder] = pytest.StashKey()
#: config, on an xdist worker: the worker side of the side channel (aborts, worker tag).
WORKER_KEY: pytest.StashKey[WorkerSide] = pytest.StashKey()
#: config, in a process that runs jobs: the reaper that ends them if this process is killed.
REAPER_KEY: pytest.StashKey[Reaper] = pytest.StashKey()
#: config: the job cache of this process (:class:`pytest_cidag.caching.JobCache`).
CACHE_KEY: pytest.StashKey[JobCache] = pytest.StashKey()
#: item: what the cache said about the job (hit, miss and why), when it was asked.
VERDICT_KEY: pytest.StashKey[Verdict] = pytest.StashKey()
#: item: the states of the files a cacheable job's outputs matched before it ran.
OUTPUTS_BEFORE_KEY: pytest.StashKey[dict[str, tuple[int, ...]]] = pytest.StashKey()
#: item: the timeout pytest-timeout resolved for a job (seconds; 0 for none), when it is active.
TIMEOUT_KEY: pytest.StashKey[float] = pytest.StashKey()
#: item: what the job's process tree did.
RESULT_KEY: pytest.StashKey[JobResult] = pytest.StashKey()
#: config, while the live status runs (the scheduling process): the terminal it shares,
#: through which a job's ``-s`` output is written (:mod:`pytest_cidag.live`).
LIVE_KEY: pytest.StashKey[LiveTerminal] = pytest.StashKey()
#: item: the job's attempts so far, in order (one unless it was retried).
ATTEMPTS_KEY: pytest.StashKey[list[Attempt]] = pytest.StashKey()
