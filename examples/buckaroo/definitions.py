"""The demo DAG on Dagster: its cijobs/ as one Dagster job, an op per job leg.

    dagster dev -f examples/buckaroo/definitions.py          # the UI, with the DAG
    dagster job execute -f examples/buckaroo/definitions.py  # a run, multiprocess executor

The same job files, parser, graph and runner as `pytest examples/buckaroo`
(pip install 'pytest-cidag[dagster]').
"""

from pathlib import Path

from pytest_cidag.dagster import definitions

defs = definitions(Path(__file__).parent)
