"""The timeline report in a real browser: headless Chromium (Debian's package, driven by
playwright) opens a report of a real run. ``pytest -m browser`` runs just this."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import NO_CHROMIUM, find_chromium, open_report
from tests.conftest import JobWriter
from tests.test_record import jobs_by_id, record_of

pytestmark = pytest.mark.browser


@pytest.fixture
def chromium() -> str:
    pytest.importorskip("playwright", reason="playwright is in the dev extra: pip install -e '.[dev]'")
    path = find_chromium()
    if path is None:
        pytest.skip(NO_CHROMIUM)
    return path


def test_the_report_shows_every_job_and_its_times(
    pytester: pytest.Pytester, job: JobWriter, chromium: str, tmp_path: Path
) -> None:
    job("build", "sleep 0.4")
    job("unit", "sleep 0.2", needs='["build"]')
    job("lint", "sleep 0.1")
    job("broken", "sleep 0.1; exit 3")
    job("after-broken", "true", needs='["broken"]')
    result = pytester.runpytest("--cidag-run-dir", "run", "--cidag-report", "--cidag-report-gates", "build")
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    record = record_of(pytester.path / "run")
    jobs = jobs_by_id(record)
    ran = {k for k, j in jobs.items() if j["outcome"] != "blocked"}

    with open_report(pytester.path / "run" / "report.html", chromium) as report:
        # every job that ran has a bar: hovering each bar names one job (the critical path's
        # outlines lie over their jobs' bars, and name them too)
        named = {report.hover_bar(n).split(":", 1)[0] for n in range(report.bar_count())}
        assert named == ran
        # the label shows the record's exact times, worker, exit code and log
        build = jobs["build"]
        label = report.hover_job("build")
        for part in (
            "build: passed, on the critical path",
            f"worker {build['worker']}",
            f"start +{build['start'] - record['start']:.3f} s",
            f"end +{build['end'] - record['start']:.3f} s",
            f"duration {build['end'] - build['start']:.3f} s",
            "exit code 0",
            f"log {pytester.path / 'run' / 'build.log'}",
        ):
            assert part in label
        assert "exit code 3" in report.hover_job("broken")
        # the gate's line and its label are drawn
        assert report.page.get_by_text("build ended").count() == 1
        png = tmp_path / "report.png"
        report.screenshot(png)
        assert report.refused == []  # it opened offline
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
