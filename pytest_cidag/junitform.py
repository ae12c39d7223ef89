"""The JUnit XML form (ini ``cidag_junit_form``, ``--cidag-junit-form``): which tools that
annotate a pull request find a job's file and line in it; and the rewrite, after pytest wrote
the file, that puts there what jobs carried on their reports (:mod:`pytest_cidag.core.junit`)."""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_cidag import internals
from pytest_cidag.core.junit import CARRIERS, JunitForm, rewrite

FORMS = tuple(form.value for form in JunitForm)


def junit_form_setting(config: pytest.Config) -> JunitForm:
    """The form asked for: the option (argparse checks its choices), else the ini value."""
    value = config.getoption("cidag_junit_form") or config.getini("cidag_junit_form")
    if value not in FORMS:
        raise pytest.UsageError(
            f"cidag_junit_form: {value!r} from ini cidag_junit_form must be one of {', '.join(FORMS)}"
        )
    return JunitForm(value)


class JunitRewrite:
    """Registered where pytest writes the JUnit XML (the xdist controller, or the only
    process) of a run with jobs: once a report carried a job's file and line (the ``github``
    form) or its earlier attempts, rewrites the file into what its consumers read."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.carried = False

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.carried and any(name in CARRIERS for name, _ in report.user_properties):
            self.carried = True

    @pytest.hookimpl(trylast=True)  # after pytest's LogXML wrote the file in its own sessionfinish
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        logfile = internals.junit_logfile(self.config)
        if logfile is None or not self.carried:
            return
        try:
            rewrite(Path(logfile))
        except (OSError, ValueError, ET.ParseError) as exc:
            # the file pytest wrote stays as it is: the properties left in its testcases
            warnings.warn(
                pytest.PytestWarning(f"cidag: the JUnit XML {logfile} was not rewritten: {exc}"),
                stacklevel=1,
            )
