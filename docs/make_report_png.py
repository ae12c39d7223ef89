"""Make docs/report.png, the README's picture of the timeline report.

Runs the demo (examples/buckaroo) at ``-n 2`` with ``--cidag-report`` (the cache off, so
every job runs), opens the report in headless Chromium with the browser test's code
(tests/browser.py), and takes a screenshot (no hover label: wherever it falls, it hides bars)::

    python docs/make_report_png.py [OUT.png]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import NO_CHROMIUM, find_chromium, open_report  # noqa: E402  # after the path

#: The old runner's gate lines: "JS built", "wheel built".
GATES = "build-js,build-wheel"


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "report.png"
    chromium = find_chromium()
    if chromium is None:
        print(NO_CHROMIUM, file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="cidag-demo-") as tmp:
        run = Path(tmp) / "buckaroo"
        command = [sys.executable, "-m", "pytest", "examples/buckaroo", "-n", "2", "-q", "-p", "no:randomly"]
        command += ["--cidag-cache", "off", "--cidag-run-dir", str(run)]
        command += ["--cidag-report", f"--cidag-report-gates={GATES}"]
        subprocess.run(command, cwd=ROOT, check=True)
        with open_report(run / "report.html", chromium) as report:
            report.screenshot(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
