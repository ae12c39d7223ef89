"""The README's two commands stay true: CI runs the test command word for word."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    head = text.split("---", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", head, flags=re.S)


def test_readme_opens_with_two_commands() -> None:
    main, tests = readme_commands()
    # the demo first (seconds), with its report; then the own CI; both on two workers
    demo, own = main.index("pytest examples/buckaroo -n 2 -rs --cidag-report"), main.index("pytest cijobs -n 2")
    assert demo < own and main.endswith("pytest cijobs -n 2")
    assert "pip install -e '.[dev]'" in main and "pip install -e '.[dev]'" in tests


def test_ci_runs_the_readme_test_command() -> None:
    _, tests = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci
