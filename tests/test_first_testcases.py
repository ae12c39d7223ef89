"""``--cidag-first-testcases``: a narrowed first pass, then the whole selection, one result.

The first pass's items are their own (``suite@first[3.11]``), run with CIDAG_TESTCASES set to
the expression, go first by priority (and, with -x, before anything of the full pass starts),
and fail the run on their own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cidag.core.jobspec import JobSpecError, parse_text

# --- the parts, without pytest runs -----------------------------------------------------------


def test_testcases_in_the_block() -> None:
    spec = parse_text("# /// cidag\n# testcases = true\n# matrix = { py = ['3.12'] }\n# ///\n", Path("t.sh"))
    assert spec.testcases
    assert [leg.first_pass_id for leg in spec.legs()] == ["t@first[3.12]"]
    assert "testcases" not in spec.block_data()  # not part of a cache key: it changes nothing the job does
    with pytest.raises(JobSpecError, match=r"'testcases' must be true or false, got a string: 'yes'"):
        parse_text("# /// cidag\n# testcases = 'yes'\n# ///\n", Path("t.sh"))
    # a first-pass id is longer, and names files too
    name = "n" * 242  # 247 characters at most
    parse_text(f"# /// cidag\n# name = '{name}'\n# ///\n", Path("t.sh"))
    with pytest.raises(JobSpecError, match="is 248 characters long"):
        parse_text(f"# /// cidag\n# name = '{name}'\n# testcases = true\n# ///\n", Path("t.sh"))
