"""The reaper process itself (see :mod:`pytest_cidag.core.reaper`). Pure: no pytest import.

It imports only ``os`` while it waits, so it is up in about the time the interpreter
takes to start; the runner's search and kill are imported when needed. It handles no
signal: in a session of its own, no terminal's Ctrl-C or hang-up reaches it.
"""

from __future__ import annotations

import os

#: The line that says the run ended normally: nothing to kill.
BYE = b"bye"
#: The last line the reaper writes into the log of each job it ended.
REASON = "the pytest process running it died"


def main(argv: list[str]) -> None:
    """The reaper process: ``VARIABLE GRACE``, records on standard input."""
    variable, grace = argv[0], float(argv[1])
    running: dict[int, bytes] = {}
    said_bye = False
    pending = b""
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            kind, _, rest = line.partition(b" ")
            if kind == b"+":
                pgid, _, path = rest.partition(b" ")
                running[int(pgid)] = bytes.fromhex(path.decode())
            elif kind == b"-":
                running.pop(int(rest), None)
            elif line == BYE:
                said_bye = True
    if said_bye and not running:
        return
    import contextlib
    from pathlib import Path

    from pytest_cidag.core import runner

    end_jobs(list(running), variable, grace)
    for log_path in running.values():
        with contextlib.suppress(OSError):
            runner.append_trailer(Path(os.fsdecode(log_path)), f"job killed: {REASON}")


def end_jobs(pgids: list[int], variable: str, grace: float) -> int:
    """Kill every process of the process groups ``pgids`` or tagged with ``variable``."""
    import contextlib

    from pytest_cidag.core import runner

    def find() -> list[int]:
        found = runner.tagged_processes(None, variable)
        for pgid in pgids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, 0)
                found.append(-pgid)  # the group: _signal_all signals it with killpg
        return found

    return runner.terminate(find, None, grace)
