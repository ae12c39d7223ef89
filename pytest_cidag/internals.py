"""Every private pytest and pytest-xdist internal the plugin uses, in one place, with why.

pyproject.toml bounds pytest and pytest-xdist below their next major versions, and the
``prerelease`` job in ``cijobs/`` runs the suite against their newest pre-releases, so a
change to any of these is seen before users see it. No other module of the package touches
``_pytest`` or a private attribute of pytest's or xdist's objects (tests/test_reports.py
checks it).

Each entry: the internal, what it is used for, and why nothing public does it.

* ``pytest.skip.Exception(..., _use_item_location=True)``: a job's skip (exit 77, blocked,
  cancelled) is shown at the job file's line, as a skip marker's is. ``pytest.skip()``
  would point at this plugin's source.
* ``_pytest.main.wrap_session``: ``--cidag-graph`` runs a session that collects, prints the
  graph and runs nothing, with pytest's own error handling and exit codes.
* ``_pytest.runner.runtestprotocol`` and ``Session._setupstate.teardown_exact``: an xdist
  worker runs an item's protocol but tears down only the item; its module and class
  fixtures stay up until the tick item knows the next item (pytest needs ``nextitem`` for
  that, and the scheduler decides the next item only when this one ends).
* ``_pytest.runner.runtestprotocol`` again, with pytest's own logstart/logfinish around it:
  where pytest-rerunfailures is installed, a job's protocol is run ahead of its impl, which
  would run a failed job again itself (a job's retries are its own, at every ``-n``). pytest
  has no public way to skip one plugin's ``pytest_runtest_protocol``.
* ``_pytest._code.code`` (``ExceptionChainRepr`` and friends): a failed job's report is a
  few plain lines with a one-line crash message (JUnit's message, ``-rA``, IDEs), not a
  Python traceback; a non-exception failure has no public repr type.
* the plugin named ``"lfplugin-collwrapper"``: with jobs, ``--lf`` collects whole files, so
  a passed test that a job needs stays in the graph (pytest's wrapper would drop it).
* xdist's ``DSession.maxfail``: the DAG scheduler counts ``-x``/``--maxfail`` itself and kills
  running jobs; xdist's own count lets queued items run on and exits 2.
* xdist's ``DSession._session``: the collected count shown excludes the hidden tick item
  (xdist sets it after its own hook, so only the scheduler's call is late enough).
* xdist's ``DSession.sched``: a run without jobs hands xdist the scheduler the user's hook
  or ``--dist`` would have given (the hook is called before anything is collected, so the
  choice is made at the first collection and xdist's attribute is set then).
* ``_pytest.junitxml.xml_key`` (``LogXML.add_global_property``): cache hits are named in a
  ``<testsuite>`` property. A ``<testcase>`` property would make the XML invalid against
  Jenkins' schema, and the public ``record_testsuite_property`` is a fixture, which a hook
  cannot use.
* ``LogXML.logfile`` (through the same ``xml_key``): the path pytest wrote the JUnit XML to,
  normalized as pytest normalized ``--junitxml``, so the ``github`` form
  (:mod:`pytest_cidag.junitform`) rewrites exactly that file.
* xdist's ``WorkerController.shutting_down``, ``.workeroutput`` and ``.gateway`` (read by
  the scheduler, which cannot import this module): no job goes to a worker xdist is
  stopping, and a worker that ended its session by itself is not a crash.
* ``TerminalWriter._file`` and the terminal writer's ``write_raw``, replaced on the
  instance while jobs run: the live status line (:mod:`pytest_cidag.live`) is erased before
  pytest writes anything and drawn again after, from a thread. No hook runs before each of
  pytest's writes, and the status thread writes where pytest's writer does (its stream,
  which is not ``sys.stdout`` while pytest captures a test's output).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TextIO

import pytest


def skip_at_item(reason: str) -> BaseException:
    """A skip exception that reports the item's own location (the job file's line)."""
    return pytest.skip.Exception(reason, _use_item_location=True)


def wrap_session(config: pytest.Config, main: Any) -> int | pytest.ExitCode:
    from _pytest.main import wrap_session as _wrap_session

    return _wrap_session(config, main)


def run_protocol_keeping_parents(item: pytest.Item) -> None:
    """pytest's protocol for ``item``, tearing down only the item: its module and class
    stay set up until :func:`teardown_towards` knows the next item."""
    from _pytest.runner import runtestprotocol

    runtestprotocol(item, nextitem=item.parent, log=True)  # type: ignore[arg-type]


def run_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """What pytest's own ``pytest_runtest_protocol`` does for ``item``."""
    from _pytest.runner import runtestprotocol

    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    runtestprotocol(item, nextitem=nextitem, log=True)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)


def teardown_towards(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Tear down what the previous item left set up and ``nextitem`` does not share."""
    item.session._setupstate.teardown_exact(nextitem)


def failure_repr(path: str, lineno: int, message: str, text: str) -> Any:
    """A failure shown as ``text`` (plain lines), with ``message`` as its one-line crash
    message (JUnit's failure message, -rA's short summary, IDEs)."""
    from _pytest._code.code import ExceptionChainRepr, ReprEntryNative, ReprFileLocation, ReprTraceback

    crash = ReprFileLocation(path, lineno, message)
    tb = ReprTraceback([ReprEntryNative([text])], None, "native")
    return ExceptionChainRepr([(tb, crash, None)])


def collect_whole_files_for_lf(config: pytest.Config) -> None:
    """pytest's ``--lf`` keeps only a file's failed tests at collection; undo that."""
    wrapper = config.pluginmanager.get_plugin("lfplugin-collwrapper")
    if wrapper is not None:
        config.pluginmanager.unregister(wrapper)


def xdist_session_plugin(config: pytest.Config) -> Any:
    """xdist's controller plugin, or None."""
    return config.pluginmanager.get_plugin("dsession")


def disable_xdist_maxfail(config: pytest.Config) -> None:
    plugin = xdist_session_plugin(config)
    if plugin is not None:
        plugin.maxfail = 0


def set_collected_count(config: pytest.Config, count: int) -> None:
    plugin = xdist_session_plugin(config)
    session = getattr(plugin, "_session", None)
    if session is not None:
        session.testscollected = count


def replace_xdist_scheduler(config: pytest.Config, scheduler: Any) -> None:
    xdist_session_plugin(config).sched = scheduler


def worker_exit_status(node: Any) -> int | None:
    """The exit status a worker reported when it finished by itself, else None."""
    output = getattr(node, "workeroutput", None)
    if output is None:
        return None
    status = output.get("exitstatus")
    return status if isinstance(status, int) else 0


def worker_id(node: Any) -> str:
    return str(getattr(getattr(node, "gateway", None), "id", node))


def add_junit_suite_property(config: pytest.Config, name: str, value: str) -> None:
    """A ``<property>`` of the JUnit XML's ``<testsuite>``, when ``--junitxml`` is on."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    if xml is not None:
        xml.add_global_property(name, value)


def junit_logfile(config: pytest.Config) -> str | None:
    """The file pytest writes the JUnit XML to, when ``--junitxml`` is on in this process."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    return None if xml is None else str(xml.logfile)


def terminal_stream(config: pytest.Config) -> TextIO:
    """The stream pytest's terminal writer writes to (``sys.stdout`` as it was at configure)."""
    stream: TextIO = config.get_terminal_writer()._file
    return stream


def around_terminal_writes(
    config: pytest.Config, around: Callable[[str], AbstractContextManager[None]]
) -> Callable[[], None]:
    """Make each write of pytest's terminal writer happen inside ``around(text)``, flushed
    before it ends; returns what undoes that. Every write of the writer (``write``, ``line``,
    ``sep``, the reporter's) goes through ``write_raw``."""
    writer = config.get_terminal_writer()
    original = writer.write_raw

    def write_raw(msg: str, *, flush: bool = False) -> None:
        with around(msg):
            original(msg, flush=True)

    writer.write_raw = write_raw  # type: ignore[method-assign]

    def undo() -> None:
        if writer.__dict__.get("write_raw") is write_raw:
            del writer.write_raw

    return undo
