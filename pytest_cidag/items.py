"""The job collector and :class:`JobItem`: a job file becomes pytest items that run it."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_cidag import internals
from pytest_cidag.caching import JobCache, Verdict, file_states, relocatable, relocated, write_key
from pytest_cidag.core import junit, runner
from pytest_cidag.core.cachekey import UNCACHED, KeyParts, explain, match_files
from pytest_cidag.core.cachestore import CacheError
from pytest_cidag.core.jobrun import JobFiles, failure_text, job_cwd, job_environ, judge, run_details
from pytest_cidag.core.jobspec import (
    MAX_RETRIES,
    JobLeg,
    JobSpec,
    JobSpecError,
    attempt_log_name,
    command_for,
    display_command,
    is_under,
    parse_text,
)
from pytest_cidag.core.outputs import NeedsEnviron, OutputClash, needs_environ_of
from pytest_cidag.core.status import Status
from pytest_cidag.jobfiles import register_markers, shown_path
from pytest_cidag.keys import (
    ATTEMPTS_KEY,
    CACHE_KEY,
    LIVE_KEY,
    OUTPUTS_BEFORE_KEY,
    REAPER_KEY,
    RESULT_KEY,
    RUN_KEY,
    SETTINGS_KEY,
    TIMEOUT_KEY,
    VERDICT_KEY,
    WORKER_KEY,
)
from pytest_cidag.retrying import Attempt, RetryError, RetryPlan, is_flaky, retry_plan

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from pytest_cidag.core.settings import Settings

#: An attempt's outcome when it was killed from outside (fast-fail elsewhere, an interrupt).
CANCELLED = "cancelled"


class JobFile(pytest.Collector):
    """A job script: collects one :class:`JobItem` per matrix leg (one when there is no matrix).

    Deliberately not a ``pytest.File``: ``--lf`` skips whole files without failures and
    filters items inside files, which would make the upstream jobs of a failed job
    uncollectable; the job graph needs every job of a job file.
    """

    #: The path under its job directory, which names it in node ids and reports (``path``,
    #: the path it was reached by, differs when the command line named a symlink's target).
    job_path: Path

    @classmethod
    def for_path(cls, parent: pytest.Collector | pytest.Session, path: Path, job_path: Path | None = None) -> JobFile:
        job_path = job_path or path
        rel = os.path.relpath(job_path, parent.config.rootpath).replace(os.sep, "/")
        collector = cls.from_parent(parent, name=job_path.name, path=path, nodeid=rel)
        collector.job_path = job_path
        return collector

    def collect(self) -> Iterator[JobItem]:
        try:
            # stat before reading: a change after this point shows as a different stat
            seen = _stat_key(self.path.stat())
            data = self.path.read_bytes()
            spec = parse_text(data.decode("utf-8", errors="replace"), self.path, root=self.config.rootpath)
        except JobSpecError as exc:
            raise self.CollectError(shown_path(exc.path, self.config) + f":{exc.line}: {exc.message}") from None
        except OSError as exc:
            raise self.CollectError(f"{shown_path(self.path, self.config)}: cannot read the job file: {exc}") from None
        # What the run-time check may take for granted while the file's stat is unchanged:
        # it is a non-blank job file with this block, run by this argv. Not for a file changed
        # in the last second: file times tick coarsely (a few ms), so a change right after
        # the stat above could keep the same times ("racy git"); such a file is read again.
        recent = max(seen[3], seen[4]) > time.time_ns() - RACY_NS
        checked = (seen, command_for(self.path, data)) if data.strip() and not recent else None
        settings: Settings = self.config.stash[SETTINGS_KEY]
        first = settings.first_testcases if spec.testcases else None
        for leg in spec.legs():
            items = [JobItem.from_parent(self, name=leg.id, leg=leg, testcases=settings.testcases)]
            if first is not None:  # its first-pass item, before it
                items.insert(0, FirstPassItem.from_parent(self, name=leg.first_pass_id, leg=leg, testcases=first))
            for item in items:
                item.checked = checked
                _apply_markers(item, spec)
                if settings.junit_form == junit.JunitForm.GITHUB:
                    path, lineno, _ = item.location
                    item.user_properties.extend(junit.properties(path, (lineno or 0) + 1))
                yield item


class DirectoryLoop(pytest.Directory):
    """A directory in a job directory that is a symlink to itself or above: an error."""

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        shown = shown_path(self.path, self.config)
        target = str(self.path.readlink()) if self.path.is_symlink() else "?"
        raise self.CollectError(f"{shown}: a directory loop (a symlink to {target!r}, which holds it): remove the link")


def _apply_markers(item: JobItem, spec: JobSpec) -> None:
    config = item.config
    register_markers(config, spec.markers)
    for name in spec.markers:
        item.add_marker(name)
    if spec.timeout is not None and config.pluginmanager.hasplugin("timeout"):
        # A marker, so pytest-timeout's precedence applies: it beats --timeout and the ini.
        item.add_marker(pytest.mark.timeout(spec.timeout))


class JobFailed(Exception):
    """A job ended badly; carries what the failure report shows."""

    def __init__(
        self,
        headline: str,
        result: runner.JobResult | None,
        details: list[str],
        status: Status = Status.FAILED,
    ) -> None:
        super().__init__(headline)
        self.headline = headline
        self.result = result
        self.details = details
        self.status = status  # FAILED or TIMEOUT: how dependents name it


class JobItem(pytest.Item):
    """One runnable job (one matrix leg). ``runtest`` runs the script as a process tree."""

    def __init__(self, *, leg: JobLeg, testcases: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.leg = leg
        self.spec = leg.spec
        #: Its CIDAG_TESTCASES (``--cidag-testcases``; a first pass's expression), None: unset
        self.testcases = testcases
        #: (the file's stat key, its argv) as collected, or None to check the file in full
        self.checked: tuple[tuple[int, ...], list[str]] | None = None
        #: The outputs of what it needs, as its last run got them
        self.needs_environ = NeedsEnviron()

    @property
    def job_id(self) -> str:
        return self.leg.id

    def declared_timeout(self) -> float | None:
        """The job's own timeout: its closest ``timeout`` marker, else its block's."""
        marker = self.get_closest_marker("timeout")
        if marker is not None:
            value = marker.args[0] if marker.args else marker.kwargs.get("timeout")
            return float(value) if value else None
        return self.spec.timeout

    def effective_timeout(self) -> float | None:
        """pytest-timeout's resolved value when it is active, else the declared one."""
        if TIMEOUT_KEY in self.stash:
            return self.stash[TIMEOUT_KEY] or None
        if self.config.pluginmanager.hasplugin("timeout"):
            return None  # pytest-timeout said: no timeout for this item
        return self.declared_timeout()

    def runtest(self) -> None:
        settings: Settings = self.config.stash[SETTINGS_KEY]
        run_dir = settings.ensure_run_dir()
        rootpath = self.config.rootpath
        cwd = job_cwd(self.spec, rootpath)
        files = JobFiles.in_run(run_dir, self.job_id)
        log_path, output_path = files.log, files.outputs
        argv = self._check_file_unchanged()
        shown = display_command([*argv[:-1], shown_path(self.path, self.config)])
        # checked at collection too; a symlink made since could lead out
        if self.spec.cwd and not (cwd.is_dir() and is_under(self.spec.cwd, rootpath)):
            raise JobFailed(f"the job's cwd {self.spec.cwd!r} is not a directory under the rootdir", None, [])
        output_path.unlink(missing_ok=True)  # a reused --cidag-run-dir must not leak old outputs
        cache = self.config.stash.get(CACHE_KEY, None)
        parts = None
        if cache is not None and self.spec.cacheable and cache.mode != "off":
            parts = self._cache_parts(cache, settings)
            if cache.reads and self._restore(cache, parts, log_path, output_path, settings):
                return
            if cache.writes and self.spec.outputs:  # to tell what the run writes from what it found
                found, _ = match_files(rootpath, self.spec.outputs)
                self.stash[OUTPUTS_BEFORE_KEY] = file_states(rootpath, found)
        elif cache is not None:
            state = "off" if cache.mode == "off" else "not cacheable"
            self.stash[VERDICT_KEY] = Verdict(self.job_id, state, [] if state == "off" else ["no inputs"])
        timeout = self.effective_timeout()
        try:
            plan = retry_plan(self, settings)
        except RetryError as exc:
            raise JobFailed(str(exc), None, []) from None
        env = self._environment(settings, run_dir, output_path)

        def process() -> runner.JobProcess:
            return runner.JobProcess(
                argv,
                log_path=log_path,
                cwd=cwd,
                env=env,
                timeout=timeout,
                nice=self.spec.nice,
                tee=self._tee(settings),
                kill_grace=settings.kill_grace,
                watcher=self.config.stash[REAPER_KEY],
            )

        attempts: list[Attempt] = []
        self.stash[ATTEMPTS_KEY] = attempts
        if not settings.default_run_dir:  # (a default one is new) a reused --cidag-run-dir: no earlier run's
            for number in range(1, MAX_RETRIES + 1):
                (run_dir / attempt_log_name(self.job_id, number)).unlink(missing_ok=True)
        try:
            self._attempts(plan, process, shown=shown, timeout=timeout, output_path=output_path, settings=settings)
        finally:
            self._carry_attempts(shown)
        if cache is not None and parts is not None:
            self._keep(cache, parts, log_path, output_path, settings)

    # --- attempts -----------------------------------------------------------------------------

    def _attempts(
        self,
        plan: RetryPlan,
        process: Callable[[], runner.JobProcess],
        *,
        shown: str,
        timeout: float | None,
        output_path: Path,
        settings: Settings,
    ) -> None:
        """Run the job until an attempt passes, or ends in a way that is not retried (exit
        77, cancelled, could not start), or the retries are used up: return to pass, raise
        to skip or fail, as the last attempt did. Each attempt starts once the one before
        it is over, its whole process tree gone (``JobProcess.run`` guarantees it)."""
        attempts = self.stash[ATTEMPTS_KEY]
        failure: JobFailed | None = None
        for number in range(1, plan.attempts + 1):
            if failure is not None:
                cancelled = self._wait_to_retry(plan.delay)
                if cancelled is not None:
                    raise self._last_failure(failure, plan, f"not retried: cancelled: {cancelled}")
                self._set_aside(attempts)
            output_path.unlink(missing_ok=True)  # an attempt's outputs never reach the next
            label = f"attempt {number} of {plan.attempts}" if number > 1 else None
            result = self._run(process(), shown, settings, label)
            self.stash[RESULT_KEY] = result
            record_timing(settings.run_dir, self.nodeid, self.job_id, result, number)
            if result.log_disk_full:
                # the job's own outcome stands; only its log is in doubt
                self.warn(
                    pytest.PytestWarning(
                        f"cidag: job '{self.job_id}': its log {shown_path(result.log_path, self.config)} may be "
                        "incomplete: the disk it is on is full (No space left on device)"
                    )
                )
            try:
                self._judge(result, timeout, self._details(shown, result), output_path)
            except JobFailed as exc:
                attempts.append(Attempt(number, result, Status(exc.status).value, exc.headline))
                failure = exc
                continue
            except pytest.skip.Exception:
                attempts.append(Attempt(number, result, CANCELLED if result.aborted else Status.SKIPPED.value, ""))
                raise
            attempts.append(Attempt(number, result, Status.PASSED.value, ""))
            return
        assert failure is not None
        raise self._last_failure(failure, plan)

    def _wait_to_retry(self, delay: float) -> str | None:
        """Wait ``delay`` seconds before the next attempt; why not to retry, if the run is
        being stopped (-x elsewhere, an interrupt under xdist). At -n 0 a signal ends the
        wait as it ends a running job: it raises here."""
        worker = self.config.stash.get(WORKER_KEY, None)
        if worker is not None:
            return worker.wait_unless_aborted(delay)
        if delay > 0:
            time.sleep(delay)
        return None

    def _set_aside(self, attempts: list[Attempt]) -> None:
        """The next attempt begins: the last one's log becomes ``<id>@attempt<N>.log``."""
        last = attempts[-1]
        kept = last.result.log_path.with_name(attempt_log_name(self.job_id, last.number))
        try:
            last.result.log_path.replace(kept)
        except OSError:
            return  # its log is gone: the next attempt writes a new one
        attempts[-1] = dataclasses.replace(last, result=dataclasses.replace(last.result, log_path=kept))

    def _last_failure(self, failure: JobFailed, plan: RetryPlan, note: str | None = None) -> JobFailed:
        """The failure of a job that may be retried, saying which attempt it was."""
        if plan.retries == 0:
            return failure
        attempts = self.stash[ATTEMPTS_KEY]
        which = f"attempt {len(attempts)} of {plan.attempts}" + (f"; {note}" if note else "")
        details = list(failure.details)
        if len(attempts) > 1:
            details.append("earlier:  " + ", ".join(f"{a.headline} ({a.result.log_path.name})" for a in attempts[:-1]))
        return JobFailed(f"{failure.headline} ({which})", failure.result, details, failure.status)

    def _carry_attempts(self, shown: str) -> None:
        """Each earlier attempt as a user property, for the JUnit XML (core/junit.py): a
        ``flakyFailure`` when the job passed in the end, else a ``rerunFailure``."""
        attempts = self.stash[ATTEMPTS_KEY]
        if len(attempts) < 2:
            return
        element = junit.FLAKY_FAILURE if attempts[-1].outcome == Status.PASSED else junit.RERUN_FAILURE
        for attempt in attempts[:-1]:
            text = self._failure_text(attempt.headline, self._details(shown, attempt.result), attempt.result.log_path)
            self.user_properties.append(
                junit.attempt_property(element, f"job failed: {attempt.headline}", attempt.outcome, text)
            )

    def _details(self, shown: str, result: runner.JobResult) -> list[str]:
        return run_details(shown, result, shown_path(result.log_path, self.config))

    # --- the cache ----------------------------------------------------------------------------

    def _cache_parts(self, cache: JobCache, settings: Settings) -> KeyParts:
        run = self.config.stash.get(RUN_KEY, None)
        graph = run.graph if run is not None else None
        in_run = run.in_run() if run is not None else set()
        hasher = cache.hasher()
        hasher.refresh()  # what jobs before this one changed: git is asked again
        return cache.parts(
            self.leg,
            self.path.read_bytes(),
            graph=graph,
            nodeid=self.nodeid,
            in_run=in_run,
            hasher=hasher,
            testcases=self.testcases,
        )

    def _restore(self, cache: JobCache, parts: KeyParts, log_path: Path, output_path: Path, settings: Settings) -> bool:
        """A hit: its files, outputs and log restored, the job passes without running."""
        key = parts.key()
        self._warn_unsigned(cache)
        lookup = cache.store.lookup(parts.job, key)
        if lookup.problem:
            self._cache_warning(f"{lookup.problem}: it runs")
        notes = [f"input pattern {p!r} matches nothing" for p in parts.unmatched]
        notes += [
            f"needs {name}, which has no key: only its outputs are in this one (list its files in inputs)"
            for name, key in parts.needs.items()
            if key == UNCACHED
        ]
        if lookup.entry is None:
            reasons = cache.explain_miss(parts) if settings.why is not None else []
            self.stash[VERDICT_KEY] = Verdict(self.job_id, "miss", reasons + notes)
            return False
        try:
            outputs = cache.store.restore(lookup.entry, rootdir=self.config.rootpath, log_to=log_path)
        except CacheError as exc:
            self._cache_warning(f"cache entry not restored ({exc}): it runs")
            self.stash[VERDICT_KEY] = Verdict(self.job_id, "miss", [f"not restored: {exc}"])
            return False
        if outputs:
            output_path.write_bytes(relocated(outputs, self.config.rootpath))
        write_key(settings.run_dir, self.job_id, key)
        self.stash[VERDICT_KEY] = Verdict(self.job_id, "hit", notes)
        self.add_report_section("call", "stdout", runner.read_for_report(log_path, settings.report_limit))
        return True

    def _warn_unsigned(self, cache: JobCache) -> None:
        problem = cache.signature_problem
        if problem is not None and not cache.unsigned_warned:
            cache.unsigned_warned = True
            self.warn(pytest.PytestWarning(f"cidag: {problem}"))

    def _cache_warning(self, text: str) -> None:
        self.warn(pytest.PytestWarning(f"cidag: job '{self.job_id}': {text}"))

    def _keep(self, cache: JobCache, parts: KeyParts, log_path: Path, output_path: Path, settings: Settings) -> None:
        """After a pass: store it, unless an input changed while it ran."""
        key = parts.key()
        write_key(settings.run_dir, self.job_id, key)
        if VERDICT_KEY not in self.stash:  # (mode w: never looked up)
            self.stash[VERDICT_KEY] = Verdict(self.job_id, "miss", ["not looked up (--cidag-cache w)"])
        if not cache.writes:
            return
        if is_flaky(self):
            # A pass after a failed attempt is not stored: a hit would hide next time that the
            # job is flaky, and the failed attempt may have left files its outputs match.
            self.stash[VERDICT_KEY].reasons.append("not stored: it passed only after a failed attempt (flaky)")
            return
        self._warn_unsigned(cache)
        after = self._cache_parts(cache, settings)
        if after.key() != key:
            changed = "; ".join(explain(after, parts))
            self.warn(
                pytest.PytestWarning(
                    f"cidag: job '{self.job_id}': not cached: its inputs changed while it ran ({changed})"
                )
            )
            return
        files, _ = match_files(self.config.rootpath, self.spec.outputs) if self.spec.outputs else ([], [])
        if self.spec.outputs and not files:
            patterns = ", ".join(self.spec.outputs)
            self.warn(
                pytest.PytestWarning(f"cidag: job '{self.job_id}': not cached: its outputs ({patterns}) match no file")
            )
            return
        # A file the outputs match that the run did not write (another job's, or one an
        # incremental tool left alone) is restored only where no file is, never over one.
        before = self.stash.get(OUTPUTS_BEFORE_KEY, {})
        now = file_states(self.config.rootpath, files)
        untouched = [f for f in files if f in before and before[f] == now.get(f)]
        try:
            outputs = output_path.read_bytes() if output_path.exists() else b""
            cache.store.store(
                job=parts.job,  # the leg: a first pass is looked up under it too, by its CIDAG_TESTCASES
                key=key,
                parts=parts.to_json(),
                log=log_path,
                outputs=relocatable(outputs, self.config.rootpath),
                rootdir=self.config.rootpath,
                files=files,
                if_absent=untouched,
            )
        except (CacheError, OSError) as exc:
            self._cache_warning(f"not cached: {exc}")

    def _environment(self, settings: Settings, run_dir: Path, output_path: Path) -> dict[str, str]:
        """The job's environment: the caller's, the block's ``env`` and matrix leg, the
        ``CIDAG_*`` variables, the outputs of what it needs, and its worker's tag."""
        run = self.config.stash.get(RUN_KEY, None)
        if run is not None and run.graph is not None:
            try:
                self.needs_environ = needs_environ_of(
                    run.graph, self.nodeid, run.in_run(), settings.run_dir, settings.previous_run_dir
                )
            except OutputClash as exc:  # a message for the user, not a traceback
                raise JobFailed(str(exc), None, []) from None
        env = job_environ(
            self.leg,
            job_id=self.job_id,  # a first pass's own (test@first[3.12])
            run_dir=run_dir,
            outputs_path=output_path,
            needs=self.needs_environ.variables,
            testcases=self.testcases,
        )
        worker = self.config.stash.get(WORKER_KEY, None)
        if worker is not None:
            env[worker.tag_variable] = "1"
        return env

    def _tee(self, settings: Settings) -> runner.Sink | None:
        """With ``-s``, the terminal the job's output is copied to (taking turns with the
        live status line when it runs)."""
        stream = getattr(sys.stdout, "buffer", None) if settings.tee else None
        live = self.config.stash.get(LIVE_KEY, None)
        return live.guard(stream) if stream is not None and live is not None else stream

    def _run(
        self, proc: runner.JobProcess, shown: str, settings: Settings, label: str | None = None
    ) -> runner.JobResult:
        """Run the process (registered with the worker, so an abort reaches it); its output
        becomes a report section whatever happens (a later attempt's says which it is)."""
        worker = self.config.stash.get(WORKER_KEY, None)
        if worker is not None:
            worker.job_started(proc)
        try:
            return proc.run()
        except OSError as exc:
            if exc.errno == errno.E2BIG and self.needs_environ.outputs:
                # What it needs handed it more than Linux lets a process start with: say what.
                raise JobFailed(self.needs_environ.too_big(exc), None, [f"command:  {shown}"]) from None
            raise JobFailed(f"could not start: {exc}", None, [f"command:  {shown}"]) from None
        finally:
            if worker is not None:
                worker.job_ended(proc)
            text = runner.read_for_report(proc.log_path, settings.report_limit)
            self.add_report_section("call", "stdout", f"[cidag] {label}\n{text}" if label else text)

    def _judge(self, result: runner.JobResult, timeout: float | None, details: list[str], output_path: Path) -> None:
        """The job's outcome: return to pass, raise to skip or fail. (A cancelled job, killed
        from outside by fast-fail on another worker, is a skip, not a failure.)"""
        ending = judge(result, output_path, self.job_id, timeout, lambda path: shown_path(path, self.config))
        if ending.status is Status.SKIPPED:
            raise internals.skip_at_item(ending.reason)
        if ending.status is not Status.PASSED:
            raise JobFailed(ending.reason, result, details, ending.status)

    def _check_file_unchanged(self) -> list[str]:
        """The file must still be a non-empty job file with the metadata it was collected with.

        Returns the argv that runs it. While the file's stat (inode, size, mtime, ctime) is
        what it was at collection, it is not read again: one ``stat`` per job.
        """
        shown = shown_path(self.path, self.config)
        try:
            st = self.path.stat()
        except OSError:
            st = None
        if st is not None and self.checked is not None and _stat_key(st) == self.checked[0]:
            return list(self.checked[1])
        if st is None:
            raise JobFailed(f"the job file {shown} is gone (removed after collection)", None, [])
        if not stat.S_ISREG(st.st_mode):
            raise JobFailed(f"the job file {shown} is not a file any more", None, [])
        try:
            text = self.path.read_bytes()
        except OSError as exc:
            raise JobFailed(f"the job file {shown} cannot be read: {exc.strerror}", None, []) from None
        if not text.strip():
            raise JobFailed(f"the job file {shown} is empty", None, [])
        try:
            now = parse_text(text.decode("utf-8", errors="replace"), self.path)  # cwd: checked by runtest
        except JobSpecError as exc:
            message = f"the job file changed since collection: {shown}:{exc.line}: {exc.message}"
            raise JobFailed(message, None, []) from None
        if now != self.spec:
            raise JobFailed(
                f"the job file {shown} changed since collection (its cidag block differs): run pytest again",
                None,
                [],
            )
        return command_for(self.path, text)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if not isinstance(excinfo.value, JobFailed):
            return super().repr_failure(excinfo, style=style)
        exc = excinfo.value
        path, lineno, _ = self.location
        text = self._failure_text(exc.headline, exc.details, exc.result.log_path if exc.result is not None else None)
        return internals.failure_repr(path, (lineno or 0) + 1, f"job failed: {exc.headline}", text)

    def _failure_text(self, headline: str, details: list[str], log_path: Path | None) -> str:
        """A failure's few plain lines: what, where, the details, the log's last lines."""
        settings: Settings = self.config.stash[SETTINGS_KEY]
        path, lineno, _ = self.location
        text = failure_text(self.job_id, headline, details, log_path, settings.tail_lines)
        first, _, rest = text.partition("\n")
        # Under the headline, as a Java exception's first frame: where dorny/test-reporter
        # finds the file and line of a failure in JUnit XML (pytest_cidag/core/junit.py).
        return f"{first}\n{junit.frame(path, (lineno or 0) + 1, self.job_id)}\n{rest}"

    def reportinfo(self) -> tuple[Path, int, str]:
        # The domain, as a Python item's is its dotted name within the module
        # ("TestClass.test_x[1]"): IDEs take its last dotted part as the item's name
        # (teamcity-messages' metainfo, which PyCharm re-runs by). "job." stands where a
        # class would; a bare name would show as 'a::b' in pytest's -v line when it has a
        # dot (pytest reads one as a Python scope). The line is 0-based, as pytest's own.
        job_file = self.parent
        path = job_file.job_path if isinstance(job_file, JobFile) else self.path
        return path, self.spec.line - 1, f"job.{self.job_id}"


class FirstPassItem(JobItem):
    """A leg run first, narrowed (``--cidag-first-testcases``): ``test@first[3.12]``.

    Its own item (report, log, outputs and key files in the run directory, all named by its
    id), with CIDAG_TESTCASES set to the first pass's expression. It needs what the leg needs
    (the same upstream items, run once), nothing needs it, and it does not need the leg's
    full-pass item: the two are independent results of one run. Its cache entry is the leg's
    keyed on that expression, so a later ``--cidag-testcases`` run with it is a hit.
    """

    @property
    def job_id(self) -> str:
        return self.leg.first_pass_id

    @property
    def full_pass(self) -> str:
        """The node id of the leg's full-pass item."""
        return self.nodeid[: -len(self.name)] + self.leg.id


def record_timing(run_dir: Path, nodeid: str, job_id: str, result: runner.JobResult, attempt: int = 1) -> None:
    """Append an attempt's start and end to ``timings.jsonl`` (one small O_APPEND write)."""
    line = json.dumps(
        {
            "nodeid": nodeid,
            "job": job_id,
            "start": result.started,
            "end": result.ended,
            "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
            "returncode": result.returncode,
            "attempt": attempt,
        }
    )
    with contextlib.suppress(OSError):
        fd = os.open(run_dir / "timings.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


#: A job file whose mtime or ctime is this recent (ns) at collection is read again at run time.
RACY_NS = 1_000_000_000


def _stat_key(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
