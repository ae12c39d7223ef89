"""docker/Dockerfile: the runner image builds, runs a job DAG as its non-root user, and keeps
the cache warm across containers through its volume.

Built with buildah (``apt-get install podman`` brings it; ``buildah bud --isolation chroot``
needs no daemon), so it runs where no Docker engine does. Slow (a minute or two), so left out
of the default run (``-m "not docker"`` in pyproject's addopts) and run by the
``docker-image`` job in cijobs/: ``pytest cijobs -k docker-image``, or directly
``pytest -m docker tests/test_docker.py``.

The base image: ``CIDAG_DOCKER_BASE`` names one (e.g. ``python:3.12-slim-bookworm`` where a
registry is reachable). Without it, a minimal Debian is made with ``debootstrap`` from the
mirror apt uses on this machine, with this machine's CA bundle (so pip inside the build
trusts what pip here trusts), imported as ``localhost/cidag-debian:bookworm`` and kept for
the next run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = "localhost/cidag-debian:bookworm"
NEEDS_BUILDAH = "needs buildah (Debian: apt-get install podman) to build docker/Dockerfile without a Docker engine"


def run(*args: str, timeout: float = 900, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, (
        f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done  # type: ignore[no-any-return]


def apt_mirror() -> str | None:
    """The Debian mirror apt uses here (deb822 sources or a sources.list line)."""
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and "security" not in parts[1]:
                return parts[1]
    return None


def make_base_image(tmp: Path) -> str:
    if shutil.which("debootstrap") is None:
        pytest.skip("no base image: set CIDAG_DOCKER_BASE to a Debian image with python3, or install debootstrap")
    if os.geteuid() != 0:
        pytest.skip("debootstrap needs root: set CIDAG_DOCKER_BASE to a Debian image with python3 instead")
    mirror = apt_mirror()
    if mirror is None:
        pytest.skip("no Debian mirror found in apt's sources to debootstrap from: set CIDAG_DOCKER_BASE")
    rootfs = tmp / "rootfs"
    run(
        "debootstrap", "--variant=minbase", "--include=python3,python3-venv,git,ca-certificates",
        "bookworm", str(rootfs), mirror,
    )  # fmt: skip
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if bundle.exists():
        shutil.copyfile(bundle, rootfs / "etc/ssl/certs/ca-certificates.crt")
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    try:
        run("podman", "import", "-", BASE_IMAGE, stdin=tar.stdout)
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
    shutil.rmtree(rootfs)
    return BASE_IMAGE


@pytest.fixture(scope="module")
def base_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    if shutil.which("buildah") is None:
        pytest.skip(NEEDS_BUILDAH)
    named = os.environ.get("CIDAG_DOCKER_BASE")
    if named:
        return named
    inspect = ["buildah", "inspect", "--type", "image", BASE_IMAGE]
    if subprocess.run(inspect, capture_output=True, check=False).returncode == 0:
        return BASE_IMAGE
    if shutil.which("podman") is None:
        pytest.skip("making a base image needs podman import (apt-get install podman), or set CIDAG_DOCKER_BASE")
    return make_base_image(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def image(base_image: str) -> Iterator[str]:
    tag = f"localhost/pytest-cidag-runner-test:{uuid.uuid4().hex[:8]}"
    run(
        "buildah", "bud", "--isolation", "chroot", "--layers=false",
        "--build-arg", f"BASE={base_image}",
        "--build-arg", "PIP_PACKAGES=iniconfig",
        "-f", "docker/Dockerfile", "-t", tag, ".",
        cwd=ROOT,
    )  # fmt: skip
    yield tag
    subprocess.run(["buildah", "rmi", "--force", tag], capture_output=True, check=False)


def container_run(image: str, workspace: Path, cache: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (sh) in a fresh container of the image, as the image's user.

    The workspace is copied in, as a fresh checkout would be; the cache is a bind mount on
    the image's /cache volume. (buildah 1.28's ``run`` loses a bind mount on one of an image's
    volumes when given two: the copy keeps this to one.)
    """
    container = run("buildah", "from", "--isolation", "chroot", image).stdout.strip()
    try:
        run("buildah", "copy", "--chown", "1000:1000", container, str(workspace), "/workspace")
        return subprocess.run(
            ["buildah", "run", "--isolation", "chroot", "-v", f"{cache}:/cache", container, "--", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)


OUTCOMES = (
    "pytest cijobs -n 2 -rA; status=$?; echo OUTCOMES; "
    'python -c \'import json; print(json.dumps({j["id"]: j["outcome"] '
    'for j in json.load(open(".cidag/runs/latest/run.json"))["jobs"]}))\'; exit $status'
)


def test_image_config(image: str) -> None:
    config = json.loads(run("buildah", "inspect", "--type", "image", image).stdout)["OCIv1"]["config"]
    assert config["User"] == "cidag"
    assert set(config["Volumes"]) == {"/workspace", "/cache"}
    assert config["WorkingDir"] == "/workspace"
    assert config["Cmd"][:2] == ["pytest", "cijobs"]
    assert "PYTEST_ADDOPTS=--cidag-cache-dir=/cache" in config["Env"]


def test_runs_a_dag_as_non_root_and_the_cache_stays_warm(image: str, tmp_path: Path) -> None:
    workspace, cache = tmp_path / "workspace", tmp_path / "cache"
    (workspace / "cijobs").mkdir(parents=True)
    (workspace / "src").mkdir()
    (workspace / "src" / "input.txt").write_text("v1\n")
    (workspace / "cijobs" / "build.sh").write_text(
        '# /// cidag\n# inputs = ["src/"]\n# ///\n'
        'echo "user=$(id -un)"\necho "artifact=$(cat src/input.txt)" >> "$CIDAG_OUTPUT"\n'
    )
    (workspace / "cijobs" / "check.sh").write_text(
        '# /// cidag\n# needs = ["build"]\n# ///\n'
        'echo "got $CIDAG_NEEDS_BUILD_ARTIFACT"; git --version; python -c "import iniconfig"\n'
    )
    cache.mkdir()
    cache.chmod(0o777)  # the image's user (uid 1000) writes into the volume

    first = container_run(image, workspace, cache, OUTCOMES)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "user=cidag" in first.stdout
    assert "got v1" in first.stdout
    assert "git version" in first.stdout
    assert json.loads(first.stdout.split("OUTCOMES")[-1]) == {"build": "passed", "check": "passed"}

    # a fresh checkout in a fresh container, the same cache volume: the build is a hit
    second = container_run(image, workspace, cache, OUTCOMES)
    assert second.returncode == 0, second.stdout + second.stderr
    assert json.loads(second.stdout.split("OUTCOMES")[-1]) == {"build": "cached", "check": "passed"}
    assert "got v1" in second.stdout  # the cached job's outputs reach its dependent
    assert any(cache.iterdir())  # the cache is in the volume, not in the container
