"""The JUnit XML form (ini ``cidag_junit_form``, ``--cidag-junit-form``): which tools that
annotate a pull request find a job's file and line in it (:mod:`pytest_cidag.core.junit`)."""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_cidag import internals
from pytest_cidag.core.junit import JunitForm, to_github_form

FORMS = tuple(form.value for form in JunitForm)


def junit_form_setting(config: pytest.Config) -> JunitForm:
    """The form asked for: the option (argparse checks its choices), else the ini value."""
    value = config.getoption("cidag_junit_form") or config.getini("cidag_junit_form")
    if value not in FORMS:
        raise pytest.UsageError(
            f"cidag_junit_form: {value!r} from ini cidag_junit_form must be one of {', '.join(FORMS)}"
        )
    return JunitForm(value)


class GithubJunitForm:
    """Registered where pytest writes the JUnit XML (the xdist controller, or the only
    process) when the form is ``github``: moves each job's file and line into attributes."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(trylast=True)  # after pytest's LogXML wrote the file in its own sessionfinish
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        logfile = internals.junit_logfile(self.config)
        if logfile is None:
            return
        try:
            to_github_form(Path(logfile))
        except (OSError, ET.ParseError) as exc:
            # the file pytest wrote stays as it is: valid JUnit XML without the attributes
            warnings.warn(
                pytest.PytestWarning(f"cidag: the JUnit XML {logfile} was not put in the github form: {exc}"),
                stacklevel=1,
            )
