"""Write the demo's job scripts from buckaroo-dag.json (real job names, edges and durations).

Run it after editing the JSON: ``python examples/buckaroo/generate.py``. The jobs sleep for
their recorded duration times CIDAG_DEMO_SCALE (default 1/16), so the whole DAG runs in
seconds. ``test-python-3.11`` and ``test-python-3.13`` need nothing and take equally long, so
the demo writes them as one matrix job, ``test-python[3.11]`` and ``test-python[3.13]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
MATRIX = {"test-python-3.11": "3.11", "test-python-3.13": "3.13"}


def block(lines: list[str]) -> str:
    return "# /// cidag\n" + "".join(f"# {line}\n" for line in lines) + "# ///\n"


def cache_files(name: str) -> tuple[list[str], list[str]]:
    """(inputs, outputs) of a demo job: what it reads and makes, for the job cache.

    Every job sources cijobs/_lib.sh, so it is an input of each. The JS build reads the JS
    sources and makes the bundle; the wheel is made from the bundle (through build-js's key)
    and the Python sources; the tests read the suite and the sources; the rest depend only
    on their script and what they need (the wheel, through build-wheel's key and outputs).
    """
    inputs = ["cijobs/_lib.sh"]
    outputs: list[str] = []
    if name == "build-js":
        inputs.append("src/js/")
        outputs.append("dist/js/")
    elif name == "build-wheel":
        inputs.append("src/buckaroo/**/*.py")
        outputs.append("dist/*.whl")
    elif name in ("test-python", "test-python-3.12", "test-python-3.14", "lint-python"):
        # *.py, not the directories: running the suite writes __pycache__ there
        inputs += ["src/buckaroo/**/*.py", "suite/**/*.py"]
    elif name == "test-js":
        inputs.append("src/js/")
    return inputs, outputs


def main(jobs: Path = HERE / "cijobs") -> None:
    data = json.loads((HERE / "buckaroo-dag.json").read_text())
    for old in jobs.glob("*.sh"):
        if not old.name.startswith("_"):
            old.unlink()
    matrix_done = False
    for job in data["jobs"]:
        name, needs, seconds, delay = job["name"], job["needs"], job["seconds"], job["start_delay_s"]
        markers = []
        if name.startswith("playwright"):
            markers.append("playwright")
        if seconds >= 30:
            markers.append("slow")
        meta = []
        title = name
        if name in MATRIX:
            title = " and ".join(MATRIX)
            if matrix_done:
                continue
            matrix_done = True
            name = "test-python"
            versions = ", ".join(f'"{v}"' for v in MATRIX.values())
            meta.append(f"matrix = {{ python = [{versions}] }}")
        if needs:
            meta.append("needs = [" + ", ".join(f'"{n}"' for n in needs) + "]")
        if markers:
            meta.append("markers = [" + ", ".join(f'"{m}"' for m in markers) + "]")
        meta.append(f"timeout = {max(30, seconds * 2)}")
        inputs, outputs = cache_files(name)
        meta.append("inputs = [" + ", ".join(f'"{p}"' for p in inputs) + "]")
        if outputs:
            meta.append("outputs = [" + ", ".join(f'"{p}"' for p in outputs) + "]")
        meta.append('env_inputs = ["DEMO_FAIL", "CIDAG_DEMO_SCALE"]')
        if name.startswith("test-python"):
            meta.append("testcases = true")  # run_suite narrows the suite by CIDAG_TESTCASES
        body = [f"work {seconds} {delay}"]
        if name.startswith("test-python"):
            body.insert(0, "run_suite")
        if name == "build-js":
            body.append("mkdir -p dist/js && cat src/js/*.js > dist/js/bundle.js")
        if name == "build-wheel":
            wheel = "dist/buckaroo-0.12.12-py3-none-any.whl"
            body.append(f"mkdir -p dist && cat dist/js/bundle.js src/buckaroo/*.py > {wheel}")
            body.append('echo "wheel=dist/buckaroo-0.12.12-py3-none-any.whl" >> "$CIDAG_OUTPUT"')
        if "wheel" in needs or "build-wheel" in needs:
            body.append('echo "using ${CIDAG_NEEDS_BUILD_WHEEL_WHEEL:-no wheel output}"')
        script = (
            "#!/usr/bin/env bash\n"
            + f"# {title}: {seconds}s in buckaroo's CI"
            + (f", starts {delay}s late" if delay else "")
            + "\n"
            + block(meta)
            + 'source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"\n'
            + "\n".join(body)
            + "\n"
        )
        path = jobs / f"{name}.sh"
        path.write_text(script)
        path.chmod(0o755)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "cijobs")
