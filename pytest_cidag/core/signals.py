"""Signals that end a run: SIGINT, SIGTERM, SIGHUP. Pure: no pytest import.

Python runs a signal's handler in the main thread, between two bytecodes, wherever that
thread happens to be. Two tools keep a job's process tree from escaping that:

* :func:`wind_down`: SIGTERM and SIGHUP raise :class:`Terminated` (a ``KeyboardInterrupt``)
  instead of killing the process at once, so the code that started a job can kill its tree
  on the way out. Installed only where nobody else handles them, and undone afterwards.
  Optionally a second signal does something else than the first (stop now).
* :func:`deferred`: while a job's first process is being started and registered, the three
  signals are only recorded; they take effect (the handler that was there runs) when the
  block ends, where the caller is ready to clean up. A signal can then never land between
  ``fork`` and the ``try`` that would kill what was forked.

Both act only in the main thread (no other thread receives Python signal handlers).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

#: The signals that end a run.
ENDING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: The ones whose default action kills the process at once (SIGINT's default raises).
KILLING = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the main thread was: wind down as on Ctrl-C."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated(f"terminated by {signal.Signals(signum).name}")


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def wind_down(on_second: Callable[[int], None] | None = None) -> Callable[[], None]:
    """Make SIGTERM and SIGHUP raise :class:`Terminated` where they are not handled.

    With ``on_second``, SIGINT too is taken over (where Python's default handler is in
    place), and only the first of the three signals raises: each later one calls
    ``on_second(signum)`` instead, wherever the main thread is. That is a second Ctrl-C
    while the first one's wind-down runs: stop now, without a traceback from wherever the
    wind-down happened to be.

    Returns a function that restores what was there (only where our handler is still
    installed: a handler someone set meanwhile is theirs). Does nothing outside the main
    thread.
    """
    if not in_main_thread():
        return lambda: None
    fired = False

    def first_then_second(signum: int, frame: Any) -> None:
        nonlocal fired
        if fired and on_second is not None:
            on_second(signum)
            return
        fired = True
        if signum == signal.SIGINT:
            signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt, as without us
        _terminate(signum, frame)

    handler = _terminate if on_second is None else first_then_second
    replaced = {}
    for sig in ENDING:
        current = signal.getsignal(sig)
        unhandled = current is signal.SIG_DFL if sig in KILLING else current is signal.default_int_handler
        if unhandled and (sig in KILLING or on_second is not None):
            replaced[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, previous in replaced.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, previous)
        replaced.clear()

    return restore


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP until the block ends, then act on them.

    A signal that arrives inside the block is recorded; at its end the handlers are put
    back and each recorded signal is handled as it would have been (its Python handler is
    called, so ``KeyboardInterrupt`` or :class:`Terminated` is raised at the end of the
    block; a default action is carried out). A held signal is acted on even when the block
    raised: a Ctrl-C is never lost (the block's exception becomes its context).
    """
    if not in_main_thread():
        yield
        return
    held: list[signal.Signals] = []

    def hold(signum: int, frame: Any) -> None:
        if signum not in held:
            held.append(signal.Signals(signum))

    previous: dict[signal.Signals, Any] = {}
    try:
        for sig in ENDING:
            current = signal.getsignal(sig)
            if current is None:  # set from C code: leave it alone
                continue
            previous[sig] = current
            signal.signal(sig, hold)
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in held:
            _act_on(sig, previous[sig])


def _act_on(sig: int, handler: Any) -> None:
    if handler is signal.SIG_IGN:
        return
    if handler is signal.SIG_DFL:
        signal.raise_signal(sig)  # what would have happened when it arrived
        return
    handler(sig, None)
