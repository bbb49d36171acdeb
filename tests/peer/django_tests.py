"""Django's own test suite for the installed Django: its sdist fetched once with pip, tests/ cached in build/.

Only the sdist carries tests/ (wheels do not). pip reads the sdist's metadata with the
setuptools of this virtualenv (--no-build-isolation), so the sdist is the only download.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "django-tests"
PIP_TIMEOUT = 600  # seconds for the whole download; pip's own socket timeout is shorter

_outcome: Path | str | None = None  # the tests/ directory, or why it is unavailable


class Unavailable(Exception):
    """Django's tests could not be fetched; the message says why and what to do."""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def tests_dir(version: str = django.__version__) -> Path:
    """build/django-tests/<version>/tests: from the cache, else downloaded and extracted there."""
    target = CACHE / version / "tests"
    if (target / "runtests.py").is_file():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix=".fetch-") as work:
        sdist = _download(version, Path(work))
        extracted = _extract_tests(sdist, Path(work) / "extracted")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # One rename: a run killed midway leaves no half tree that looks complete.
            os.rename(extracted, target)
        except OSError:
            if not (target / "runtests.py").is_file():
                raise
            # Another run filled the cache meanwhile; its copy is as good as ours.
    return target


def _download(version: str, work: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--no-build-isolation",
        "--disable-pip-version-check",
        "--timeout",
        "30",
        "--retries",
        "2",
        f"Django=={version}",
    ]
    shown = " ".join(command[2:])
    command += ["--dest", str(work)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except subprocess.TimeoutExpired as error:
        raise Unavailable(f"`{shown}` took over {PIP_TIMEOUT} s") from error
    sdists = sorted(work.glob("*.tar.gz"))
    if result.returncode != 0 or len(sdists) != 1:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise Unavailable(
            f"Could not download the sdist of Django {version} (it carries the tests the peer "
            f"tests run) with `{shown}` (exit status {result.returncode}):\n{tail}"
        )
    return sdists[0]


def _extract_tests(sdist: Path, into: Path) -> Path:
    """Extract only <top>/tests/ of the sdist and return that directory."""
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if m.name.split("/")[1:2] == ["tests"]]
        if not members:
            raise Unavailable(f"{sdist.name} has no tests/ directory")
        top = members[0].name.split("/")[0]
        # The 'data' filter refuses absolute paths, '..', links leaving the tree and devices.
        archive.extractall(into, members=members, filter="data")
    return into / top / "tests"


def fetch() -> Path | None:
    """Make Django's tests importable (as runtests.py does), once; None if they are unavailable."""
    global _outcome
    if _outcome is None:
        try:
            _outcome = tests_dir()
        except (Unavailable, OSError, tarfile.TarError) as error:
            _outcome = f"Django's own tests are unavailable, so the peer tests cannot run. {error}"
        else:
            # Appended, so nothing in Django's test tree shadows an installed module.
            sys.path.append(str(_outcome))
    return _outcome if isinstance(_outcome, Path) else None


def require() -> Path:
    """The tests directory; otherwise fail the run under CI=true, or skip saying why elsewhere."""
    directory = fetch()
    if directory is not None:
        return directory
    import pytest

    if in_ci():
        pytest.fail(f"{_outcome}\n(CI=true: the peer tests must run.)", pytrace=False)
    pytest.skip(
        f"{_outcome}\n(Outside CI the peer tests are skipped; with CI=true they fail.)",
        allow_module_level=True,
    )
