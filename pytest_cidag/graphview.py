"""``--cidag-graph``: collect, select, print the selected graph, run nothing."""

from __future__ import annotations

import sys

import pytest

from pytest_cidag.core.render import render
from pytest_cidag.keys import RUN_KEY


def graph_main(config: pytest.Config, session: pytest.Session) -> int:
    session.perform_collect()
    if session.testsfailed:
        return pytest.ExitCode.INTERRUPTED  # collection errors: the summary shows them
    run = config.stash[RUN_KEY]
    keys = run.graph.order(run.declared) if run.graph is not None else []  # stable whatever reordered the run
    text = render(run.graph, keys, config.getoption("cidag_graph"))
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.ensure_newline()
        # Nothing after the graph, so `pytest -q --cidag-graph=dot | dot -Tsvg` works.
        config.pluginmanager.unregister(tr)
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0
