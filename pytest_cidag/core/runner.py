"""Run one job as a real process tree, output streamed to a log file; kill the whole tree.

Pure: no pytest import. A job runs in its own session (so its own process group) with stdin
closed, and every process it starts inherits an environment tag unique to this job
(``CIDAG_TAG_<token>=1``). When the job ends, however it ends, every process still in its
process group or still carrying its tag is terminated (TERM, then KILL after a grace
period). The tag finds what the process group misses: children that called ``setsid``,
double-forked daemons, ``nohup cmd &``. It is the GitHub Actions runner's approach, and it
also works for nested runs, since a nested job adds its own tag and keeps its parent's.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from pytest_cidag.core import signals

TAG_PREFIX = "CIDAG_TAG_"
DEFAULT_KILL_GRACE = 2.0
#: Grace before KILL when a job is cancelled (fast-fail): the run is ending, so be quick.
ABORT_GRACE = 0.3
_POLL = 0.02
#: The points of a job's start and end, in order, where ``on_step`` is called. A signal at
#: any of them, or between them, ends with the whole tree killed and a "job killed" line.
#: ("tee-started" only with ``tee``.) After "exited" come the leftovers' kill and the log's
#: last line; once :meth:`JobProcess.run` returns, the job is over.
STEPS = ("spawning", "spawned", "tee-started", "waiting", "exited")


class Watcher(Protocol):
    """Something outside this process that ends a job's tree if this process dies
    (:class:`pytest_cidag.core.reaper.Reaper`): told before the start, at it, and at the end."""

    variable: str  # set in every job's environment

    def start(self) -> None: ...
    def job_started(self, pgid: int, log_path: Path) -> None: ...
    def job_ended(self, pgid: int) -> None: ...


class Sink(Protocol):
    """Where ``tee`` copies a job's output: a binary stream (the terminal's, or a wrapper
    that takes turns with the live status line, :mod:`pytest_cidag.core.live`)."""

    def write(self, data: bytes, /) -> object: ...
    def flush(self) -> None: ...


@dataclass(frozen=True)
class JobResult:
    """What happened to one job process tree. ``returncode`` is negative for a signal."""

    argv: tuple[str, ...]
    returncode: int
    log_path: Path
    started: float  # time.time() at start
    ended: float  # time.time() at the end, leftovers killed
    timed_out: bool = False
    aborted: str | None = None  # why it was killed from outside (fast-fail, interrupt)
    leftovers: int = 0  # processes still alive after the main one ended, then killed
    #: The log's disk was full when the job ended (or the runner's last line did not fit):
    #: writes to the log may have failed inside the job, so its output may be incomplete.
    log_disk_full: bool = False

    @property
    def duration(self) -> float:
        return self.ended - self.started

    @property
    def signal_name(self) -> str | None:
        if self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"

    def describe_exit(self) -> str:
        """``exit code 3`` / ``killed by SIGKILL`` / ``exit code 137 (128 + SIGKILL)``."""
        if self.returncode < 0:
            return f"killed by {self.signal_name}"
        text = f"exit code {self.returncode}"
        if self.returncode > 128:
            with contextlib.suppress(ValueError):
                text += f" (128 + {signal.Signals(self.returncode - 128).name})"
        return text


def new_token() -> str:
    return secrets.token_hex(8)


# --- finding a job's processes ------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, pgid, start time in clock ticks since boot) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # the command name is in parentheses and may contain anything, so split after the last ')'
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        return rest[0].decode(), int(rest[2]), int(rest[19])
    except (IndexError, ValueError):
        return None


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (None without /proc)."""
    st = _proc_stat(pid)
    return None if st is None else st[2]


def _has_tag(pid: int, needle: bytes) -> bool:
    """``needle`` is ``b"\\0NAME="``: NAME set anywhere in the environment, first included."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read()
    except OSError:
        return False
    # The first variable has no NUL before it; bash passes its environment on in its own
    # order, so the tag can be first in a job's child.
    return env.startswith(needle[1:]) or needle in env


def _last_pid() -> int | None:
    try:
        with open("/proc/sys/kernel/ns_last_pid", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


#: A pid window (see :func:`tagged_processes`) up to this wide is probed pid by pid; a wider
#: one (a busy machine, a job that forked a lot) is found by listing /proc. Measured on a
#: quiet 2-core box with 65 processes: a warm listing costs ~1 us per process and probing ~4 us
#: per pid; right after a job both cost more, and probing the job's 2 pids took 0.26 ms where
#: the listing took 0.40-0.45 ms. At 32, a probe costs about what listing ~130 processes does.
DIRECT_WINDOW = 32


def tagged_processes(pgid: int | None, variable: str, since: int | None = None) -> list[int]:
    """Live (not zombie) processes in process group ``pgid`` or with ``variable`` in their environment.

    ``since`` (clock ticks since boot) is when the job's first process started, if known. Then
    only processes created after it are candidates: their pids lie in the cyclic window from
    that pid (``pgid``) to the last pid the kernel handed out, so /proc entries outside it are
    not read at all, and the environment of none older than ``since`` is read.
    """
    if not _have_proc():
        return _job_processes_no_proc(pgid)
    needle = b"\0" + f"{variable}=".encode()
    me = os.getpid()
    found = []
    for pid in _candidates(pgid if since is not None else None):
        if pid == me:
            continue
        st = _proc_stat(pid)
        if st is None or st[0] in ("Z", "X"):
            continue
        in_group = pgid is not None and st[1] == pgid
        if in_group or ((since is None or st[2] >= since) and _has_tag(pid, needle)):
            found.append(pid)
    return found


def _candidates(first: int | None) -> Iterable[int]:
    """Pids that may belong to a job whose first process is ``first`` (every pid if None)."""
    if first is not None:
        last = _last_pid()
        if last is not None and 0 <= last - first < DIRECT_WINDOW:
            # A short window: probe its pids, no listing. A process forked after ``last`` was
            # read has a parent in the window; found alive, that parent is killed and the
            # caller looks again. (A listing has the same limit: it cannot show what is
            # forked after it.)
            return range(first, last + 1)
    pids = [int(e.name) for e in os.scandir("/proc") if e.name.isdigit()]
    if first is None:
        return pids
    # Read the last pid handed out *after* listing /proc: every listed process then has a pid
    # inside the window. Read before, a process forked in between would be listed but fall
    # outside the window and be skipped (seen once in CI: a daemon survived its job).
    last = _last_pid()
    if last is None:
        return pids
    if last >= first:
        return [p for p in pids if first <= p <= last]
    return [p for p in pids if p >= first or p <= last]  # the pid counter wrapped


@functools.cache
def _have_proc() -> bool:
    # Once per process: the first /proc lookup after a job slept costs ~0.2 ms here.
    return Path("/proc/self").is_dir()


def _job_processes_no_proc(pgid: int | None) -> list[int]:
    # Without /proc only the process group can be found (escaped daemons are not).
    if pgid is None:
        return []
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return []
    return [-pgid]


def _signal_all(pids: Sequence[int], pgid: int | None, sig: int) -> None:
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if pid < 0:
                os.killpg(-pid, sig)
            else:
                os.kill(pid, sig)


def kill_tree(pgid: int | None, token: str, grace: float = DEFAULT_KILL_GRACE, since: int | None = None) -> int:
    """Terminate every process of a job: TERM, wait up to ``grace`` s, then KILL.

    Returns how many processes were found alive at the start.
    """
    return kill_tagged(pgid, f"{TAG_PREFIX}{token}", grace, since)


def kill_tag(variable: str, grace: float = DEFAULT_KILL_GRACE) -> int:
    """Terminate every process whose environment holds ``variable`` (e.g. a dead worker's tag)."""
    return kill_tagged(None, variable, grace)


def kill_tagged(pgid: int | None, variable: str, grace: float = DEFAULT_KILL_GRACE, since: int | None = None) -> int:
    """TERM every process of group ``pgid`` or tagged with ``variable``; KILL what is left after ``grace``."""
    return terminate(lambda: tagged_processes(pgid, variable, since), pgid, grace)


def terminate(find: Callable[[], list[int]], pgid: int | None, grace: float) -> int:
    """TERM what ``find()`` lists (pids; a negative one is a process group) and the group
    ``pgid``; KILL what is still listed after ``grace``. Returns how many were listed first."""
    pids = find()
    if not pids:
        return 0
    count = len(pids)
    _signal_all(pids, pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        time.sleep(_POLL)
        pids = find()
    # KILL until none is left: a process may fork while being killed
    for _ in range(50):
        if not pids:
            break
        _signal_all(pids, pgid, signal.SIGKILL)
        time.sleep(_POLL)
        pids = find()
    return count


#: poll() takes its timeout in milliseconds as a C int.
_MAX_POLL_MS = 2**31 - 1


def wait_for_exit(proc: subprocess.Popen[bytes], timeout: float | None) -> int:
    """``proc.wait(timeout)`` without polling: the returncode, or ``TimeoutExpired``.

    Given a timeout, subprocess's wait sleeps in a loop, up to 50 ms a turn: a job that has
    a timeout would be noticed up to 50 ms after it ended, on every dependency hop. A pidfd
    becomes readable the moment the process exits. Without pidfds (not Linux, or a kernel
    before 5.3) this falls back to subprocess's own loop.
    """
    if timeout is None or proc.returncode is not None:
        return proc.wait(timeout)
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        return proc.wait(timeout)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                code = proc.poll()
                if code is not None:  # it ended right at the deadline
                    return code
                raise subprocess.TimeoutExpired(proc.args, timeout)
            ms = _MAX_POLL_MS if remaining * 1000 >= _MAX_POLL_MS else math.ceil(remaining * 1000)
            if poller.poll(ms):  # math.ceil(inf) would raise: --timeout=inf is allowed
                break
    finally:
        os.close(fd)
    return proc.wait()


def resolve_env_shebang(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """``/usr/bin/env NAME ARGS...`` as ``/dir/of/NAME ARGS...``: the program env would run.

    env finds NAME on the job's PATH and execs it; doing the lookup here saves that extra
    exec, about 1 ms per job (make and ninja run ``bash job.sh`` and do not pay it). Anything
    env would treat differently is left to env: options, assignments, a name it cannot find
    (so the job's log shows env's own error), relative PATH entries (env searches them from
    the job's cwd), and a program execve would refuse (env runs it through /bin/sh).
    """
    argv = list(argv)
    if len(argv) < 2 or not argv[0].startswith("/") or Path(argv[0]).name != "env":
        return argv
    name = argv[1]
    if not name or name.startswith("-") or "=" in name or "/" in name or any(c.isspace() for c in name):
        return argv
    path = env.get("PATH", os.defpath)
    if any(not entry.startswith("/") for entry in path.split(os.pathsep)):
        return argv
    found = shutil.which(name, path=path)
    if found is None or not _execs_directly(found):
        return argv
    return [found, *argv[2:]]


def _execs_directly(path: str) -> bool:
    """True for an ELF binary or a script with a shebang: what execve runs as it is.

    env runs anything else (an executable shell script without ``#!``) through /bin/sh
    when execve refuses it; that is left to env.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head == b"\x7fELF" or head.startswith(b"#!")


# --- running --------------------------------------------------------------------------------


class JobProcess:
    """One running job. ``start()``, then ``wait()``; ``abort(reason)`` from any thread.

    Output (stdout and stderr interleaved) goes to ``log_path`` as it is written, never
    held in memory. With ``tee``, a thread also copies it to that stream as it arrives.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        cwd: Path | str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        nice: int = 0,
        tee: Sink | None = None,
        kill_grace: float = DEFAULT_KILL_GRACE,
        on_step: Callable[[str], None] | None = None,
        watcher: Watcher | None = None,
    ) -> None:
        self.argv = tuple(argv)
        self.log_path = log_path
        self.cwd = cwd
        self.env = dict(os.environ if env is None else env)
        self.timeout = timeout
        self.nice = nice
        self.tee = tee
        self.kill_grace = kill_grace
        self.token = new_token()
        self.env[f"{TAG_PREFIX}{self.token}"] = "1"
        self.watcher = watcher
        if watcher is not None:
            self.env[watcher.variable] = "1"
        self._proc: subprocess.Popen[bytes] | None = None
        self._abort_reason: str | None = None
        self._lock = threading.Lock()
        self._killing = False
        self._terminating = False  # TERM was sent to the tree: its grace is running or over
        self._since: int | None = None
        self._exited = False
        self._reader: threading.Thread | None = None
        #: Called with each step's name (``STEPS``) as the job starts and ends: a seam for
        #: tests that deliver a signal at each point.
        self.on_step = on_step

    def _spawn_argv(self) -> list[str]:
        argv = resolve_env_shebang(self.argv, self.env)
        if self.nice:
            nice = shutil.which("nice")
            if nice:
                argv = [nice, "-n", str(self.nice), *argv]
        return argv

    def run(self) -> JobResult:
        """Start the job, wait for it, clean up; an interrupt is re-raised after cleanup.

        Whatever ends the wait (the job, its timeout, an abort from another thread, or a
        signal at any step), every process of the job is gone when this returns or raises,
        and its log says why it was killed. The steps a test can stop at are ``STEPS``.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.time()
        # One open: created or truncated, and O_APPEND so the job's processes and this one
        # can all append safely; unbuffered.
        fd = os.open(self.log_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        restore = signals.wind_down()  # SIGTERM/SIGHUP raise here, so the tree is killed
        try:
            with open(fd, "ab+", buffering=0) as log:
                try:
                    # Held until the job is registered: a signal then lands in this try.
                    with signals.deferred():
                        if self.watcher is not None:
                            self.watcher.start()
                        self._step("spawning")
                        proc = self._spawn(log)
                        self._step("spawned")
                        self._start_tee(proc, log)
                    self._step("waiting")
                    timed_out = self._wait(proc)
                    self._step("exited")
                    leftovers = self._reap(self.kill_grace)
                except BaseException as exc:
                    self._end_on(exc, log)
                    raise
                written = True
                if timed_out:
                    written = _trailer(log, f"job killed: timeout after {self.timeout:g}s")
                elif self._abort_reason:
                    written = _trailer(log, f"job killed: {self._abort_reason}")
                disk_full = not written or _disk_full(log.fileno())
        finally:
            if self.watcher is not None and self._proc is not None:
                self.watcher.job_ended(self._proc.pid)  # its tree is gone
            restore()
        return JobResult(
            argv=self.argv,
            returncode=proc.returncode,
            log_path=self.log_path,
            started=started,
            ended=time.time(),
            timed_out=timed_out,
            aborted=None if timed_out else self._abort_reason,
            leftovers=leftovers,
            log_disk_full=disk_full,
        )

    def _step(self, name: str) -> None:
        if self.on_step is not None:
            self.on_step(name)

    def _spawn(self, log: BinaryIO) -> subprocess.Popen[bytes]:
        try:
            proc = subprocess.Popen(
                self._spawn_argv(),
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if self.tee is not None else log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            _trailer(log, f"could not start {self.argv[0]!r}: {exc}")
            raise
        if self.watcher is not None:
            self.watcher.job_started(proc.pid, self.log_path)
        # Read now, while the job's first process surely exists: nothing older is its child.
        self._since = start_ticks(proc.pid)
        with self._lock:
            self._proc = proc
            pending_abort = self._abort_reason
        if pending_abort is not None:  # aborted while it started
            self._kill()
        return proc

    def _start_tee(self, proc: subprocess.Popen[bytes], log: BinaryIO) -> None:
        if self.tee is None:
            return
        assert proc.stdout is not None
        self._reader = threading.Thread(target=_copy, args=(proc.stdout, log, self.tee), name="cidag-tee", daemon=True)
        self._reader.start()
        self._step("tee-started")

    def _wait(self, proc: subprocess.Popen[bytes]) -> bool:
        """Wait for the job's main process; True when its timeout killed it."""
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        timed_out = False
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                wait_for_exit(proc, remaining)
            except subprocess.TimeoutExpired:
                # "Timeout" only when the runner kills the job: the same rule at every -n.
                if not timed_out and not _term_if_running(proc.pid):
                    proc.wait()  # it ended by itself after the deadline's check: not a timeout
                    return False
                timed_out = True
                self._kill()
                continue
            with self._lock:
                # from here on the job has ended by itself: a late abort (fast-fail
                # elsewhere) must not turn its result into "cancelled"
                self._exited = True
            return timed_out

    def _reap(self, grace: float) -> int:
        """Kill what is left of the tree (TERM, KILL after ``grace``), reap the main
        process, drain the tee. Returns how many processes were found alive."""
        proc = self._proc
        self._terminating = True
        if proc is None:
            # Never registered: only the tag can find what may have started.
            return kill_tree(None, self.token, grace)
        leftovers = kill_tree(proc.pid, self.token, grace, self._since)
        proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        return leftovers

    def _end_on(self, exc: BaseException, log: BinaryIO) -> None:
        """Leaving :meth:`run` by ``exc``: kill the whole tree, then say so in the log.

        A second signal during the grace before KILL (a second Ctrl-C) kills at once; the
        tree is gone before it propagates.
        """
        if self._proc is None and isinstance(exc, OSError):
            return  # it could not start: nothing runs, the log says why
        if isinstance(exc, signals.Terminated):
            reason = str(exc) or "terminated"
        elif isinstance(exc, KeyboardInterrupt):
            reason = "interrupted"
        else:
            reason = type(exc).__name__
        with self._lock:
            self._abort_reason = self._abort_reason or reason
            # A signal during a grace already running (the leftovers', a timeout's, an
            # abort's) cuts it short: the tree had its TERM.
            grace = 0.0 if self._terminating else self.kill_grace
        # A job that had ended by itself lost only its leftover processes.
        what = "leftover processes killed" if self._exited else "job killed"
        try:
            self._reap(grace)
        except BaseException:
            with signals.deferred():
                self._reap(0)
                _trailer(log, f"{what}: {self._abort_reason}")
            raise
        _trailer(log, f"{what}: {self._abort_reason}")

    def _kill(self, grace: float | None = None) -> None:
        """Kill the tree (the timeout, or an abort); a no-op while another thread kills it."""
        with self._lock:
            proc = self._proc
            if proc is None or self._killing:
                return
            self._killing = True
            self._terminating = True
        try:
            kill_tree(proc.pid, self.token, self.kill_grace if grace is None else grace, self._since)
        finally:
            with self._lock:
                self._killing = False
        self._terminating = False  # TERM was sent to the tree: its grace is running or over

    def abort(self, reason: str, grace: float | None = None) -> None:
        """Kill the job's tree from another thread; ``run()`` then returns with ``aborted``.

        A run that is being stopped after a failure should stop now: the grace before KILL
        is at most ``ABORT_GRACE`` unless ``grace`` is given (an interrupt gives the job's
        kill grace, as it has where pytest itself is interrupted).
        """
        with self._lock:
            if self._exited:
                return  # it ended by itself; its leftovers are being killed already
            if self._abort_reason is None:
                self._abort_reason = reason
        self._kill(min(self.kill_grace, ABORT_GRACE) if grace is None else grace)


def append_trailer(path: Path, text: str) -> None:
    """Append a ``[cidag] ...`` line to the log at ``path``, on a line of its own."""
    with open(path, "ab+", buffering=0) as log:
        _trailer(log, text)


#: How long a stop may take to show: a process in uninterruptible sleep (a hung disk) stops
#: only when it leaves it; past this it is taken as running.
_STOP_PATIENCE = 1.0


def _term_if_running(pid: int) -> bool:
    """At the deadline: TERM the job's main process (our child) if, and only if, it still runs.

    A check of its state and a TERM after it would race the process: it could end by itself
    in between, exit code 0, and be reported "Timeout". So it is frozen first: SIGSTOP, then
    ``waitid`` (``WNOWAIT``: an exit status stays for ``wait()``) says whether it stopped,
    and then it cannot end by itself before the TERM, sent before it is continued, or had
    exited. Returns False when it had ended by itself.
    """
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + _STOP_PATIENCE
    while True:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WSTOPPED | os.WNOWAIT | os.WNOHANG)
        except ChildProcessError:
            return False
        if info is not None:
            if info.si_code not in (os.CLD_STOPPED, os.CLD_TRAPPED):
                return False  # it had exited (or been killed by someone else)
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.001)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGCONT)
    return True


def _trailer(log: BinaryIO, text: str) -> bool:
    """Append a ``[cidag] ...`` line to a log, on a line of its own; False when it could
    not be written (a full disk): the job's outcome must not depend on its log."""
    try:
        size = os.fstat(log.fileno()).st_size
        newline = b"\n" if size and os.pread(log.fileno(), 1, size - 1) != b"\n" else b""
        log.write(newline + f"[cidag] {text}\n".encode())
    except OSError:
        return False
    return True


def _disk_full(fd: int) -> bool:
    """No block left for this user on the filesystem of ``fd``: a write there fails.

    The job writes its log itself (its stdout is the log file, which keeps output off
    pytest's hands), so a write that failed shows only inside the job; a disk that is full
    when it ends is the trace it leaves. One ``fstatvfs`` per job. (Root may use the blocks
    reserved for it.)
    """
    try:
        st = os.fstatvfs(fd)
    except OSError:
        return False
    free = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    return st.f_blocks > 0 and free == 0


def _copy(src: BinaryIO, log: BinaryIO, tee: Sink) -> None:
    fd = src.fileno()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        try:
            log.write(chunk)
        except (OSError, ValueError):  # the log was closed under a stuck reader: stop
            break
        with contextlib.suppress(Exception):
            tee.write(chunk)
            tee.flush()
    src.close()


def tail(path: Path, lines: int = 20, max_bytes: int = 64 * 1024) -> list[str]:
    """The last ``lines`` lines of a (possibly huge, possibly binary) log file."""
    if lines <= 0:
        return []
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace")
    out = text.splitlines()
    if size > max_bytes and out:
        out = out[1:]  # the first line is probably cut
    return out[-lines:]


def read_for_report(path: Path, limit: int) -> str:
    """A log's text for a report section: whole if it fits in ``limit`` bytes, else head and tail."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            if size <= limit:
                data = f.read()
                return data.decode("utf-8", errors="replace")
            half = limit // 2
            head = f.read(half)
            f.seek(size - half)
            end = f.read(half)
    except OSError as exc:
        return f"[cidag] could not read the log {path}: {exc}\n"
    omitted = size - len(head) - len(end)
    return (
        head.decode("utf-8", errors="replace")
        + f"\n[cidag] ... {omitted} bytes omitted; the full output is in {path} ...\n"
        + end.decode("utf-8", errors="replace")
    )


if sys.platform == "win32":  # pragma: no cover
    raise ImportError("pytest-cidag needs a POSIX system (process groups, signals)")
