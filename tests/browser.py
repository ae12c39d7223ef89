"""Headless Chromium on a timeline report: the browser test's code, also used by
docs/make_report_png.py to make the README's picture.

Debian's ``chromium`` package, driven by playwright (from PyPI) through ``executable_path``:
no browser of playwright's own is downloaded. Every request that is not for a local file is
refused and kept, so a report that needs the network shows it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

#: Why the browser test skips, and what to do about it.
NO_CHROMIUM = "Chromium is not installed: apt-get install chromium (Debian's package; playwright drives it)"
#: The plot's element in a report (``div_id`` in pytest_cidag/core/report.py).
PLOT = "#cidag-timeline"
#: One SVG path per drawn bar (plotly).
BARS = f"{PLOT} .barlayer .point path"
HOVER = f"{PLOT} .hoverlayer .hovertext"


def find_chromium() -> str | None:
    """Debian's chromium on PATH, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class ReportPage:
    """A report open in the browser. ``refused``: URLs of requests that left the machine."""

    page: Page
    refused: list[str] = field(default_factory=list)

    def bar_count(self) -> int:
        return self.page.locator(BARS).count()

    def hover_bar(self, n: int) -> str:
        """Move the mouse to the middle of the ``n``-th bar; the hover label's text."""
        box = self.page.locator(BARS).nth(n).bounding_box()
        assert box is not None, f"bar {n} is not drawn"
        self.page.mouse.move(0, 0)  # away first: a label shows on entering a bar
        self.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        label = self.page.locator(HOVER).first
        label.wait_for(timeout=5000)
        return label.text_content() or ""

    def hover_job(self, job: str) -> str:
        """Hover the bar whose label names ``job`` (``<job>: <outcome>...``); its text."""
        for n in range(self.bar_count()):
            text = self.hover_bar(n)
            if text.startswith(f"{job}: "):
                return text
        raise AssertionError(f"no bar of {job!r} shows its label")

    def screenshot(self, png: Path) -> None:
        self.page.locator(PLOT).screenshot(path=str(png))


@contextmanager
def open_report(report: Path, chromium: str, width: int = 1200) -> Iterator[ReportPage]:
    """The report open in headless Chromium, once its bars are drawn."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            opened = ReportPage(page)

            def refuse(route: Route) -> None:
                if route.request.url.startswith(("file:", "data:", "blob:")):
                    route.continue_()
                else:
                    opened.refused.append(route.request.url)
                    route.abort()

            page.route("**/*", refuse)
            page.goto(report.resolve().as_uri())
            page.locator(BARS).first.wait_for(timeout=30_000)
            yield opened
        finally:
            browser.close()
