"""Helpers shared by the tests (process checks).

``alive`` works on every POSIX system, so a "no process survives" assertion never passes
just because it could not look. Finding processes by an environment variable needs /proc:
tests that do so skip elsewhere, with ``PROC_MISSING`` as the reason's condition.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

PROC_MISSING = not Path("/proc/self/stat").exists()


def alive(pid: int) -> bool:
    """True when ``pid`` is a running process (not a zombie waiting to be reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    return _state(pid) not in ("Z", "X", "")


def _state(pid: int) -> str:
    """The process state letter (``R``, ``S``, ``Z``...), ``""`` when it is gone."""
    if not PROC_MISSING:
        try:
            data = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            return ""
        return data[data.rfind(b")") + 2 :].split()[0].decode()
    out = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return out.stdout.strip()[:1]


def processes_with_variable(variable: str) -> list[int]:
    """Live processes whose environment sets ``variable`` (read from /proc, independently
    of the runner's own search)."""
    assert not PROC_MISSING, "needs /proc: skip the test where it is missing"
    needle = f"{variable}=".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = Path(f"/proc/{entry.name}/environ").read_bytes()
        except OSError:
            continue
        if any(var.startswith(needle) for var in env.split(b"\0")) and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def read_pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()]
