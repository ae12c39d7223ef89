"""Helpers shared by the tests (process checks)."""

from __future__ import annotations

from pathlib import Path


def alive(pid: int) -> bool:
    """True when ``pid`` is a running (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    state = data[data.rfind(b")") + 2 :].split()[0]
    return state not in (b"Z", b"X")


def read_pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()]
