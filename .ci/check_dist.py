"""Build the sdist and the wheel and check them before anyone installs them (tox -e dist).

- Each holds what it must (the package, its templates, py.typed, LICENSE, the README) and
  nothing it must not (tests, the demo project, CI and benchmark files, screenshots).
- `twine check --strict`: the metadata is valid and the README renders on PyPI.
- Every classifier exists (PyPI refuses an upload with an unknown one).
- The lowest setuptools that [build-system] admits builds the same wheel: the bound is tested.
"""

from __future__ import annotations

import email.parser
import fnmatch
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from trove_classifiers import classifiers as KNOWN_CLASSIFIERS

ROOT = Path(__file__).resolve().parents[1]

# The package's files that are not Python modules found by import, and so are the first to go
# missing from an artifact (package data), plus a module each artifact must carry.
PACKAGE_FILES = [
    "keyed_storage/__init__.py",
    "keyed_storage/py.typed",
    "keyed_storage/templates/keyed_storage/preview.html",
    "keyed_storage/templates/keyed_storage/widgets/file_preview.html",
    "keyed_storage/templates/keyed_storage/widgets/direct_upload.html",
    "keyed_storage/static/keyed_storage/direct.js",
]
WHEEL_MUST = [
    *PACKAGE_FILES,
    "keyed_storage/management/commands/keyed_storage.py",
    "*.dist-info/licenses/LICENSE",
    "*.dist-info/METADATA",
]
SDIST_MUST = ["README.rst", "LICENSE", "pyproject.toml", *PACKAGE_FILES]
MUST_NOT = ["tests/*", "testproject/*", ".ci/*", "benchmarks/*", "docs/*", "*.pyc", "*/__pycache__/*", ".*"]


def main() -> None:
    dist = Path(sys.argv[1])
    shutil.rmtree(dist, ignore_errors=True)
    run("-m", "build", "--outdir", dist, ROOT, quiet=True)
    wheel, sdist = one(dist, "*.whl"), one(dist, "*.tar.gz")
    run("-m", "twine", "check", "--strict", wheel, sdist)

    problems = contents(wheel, wheel_names(wheel), WHEEL_MUST)
    problems += contents(sdist, sdist_names(sdist), SDIST_MUST)
    metadata = wheel_metadata(wheel)
    classifiers = metadata.get_all("Classifier")
    problems += [f"unknown classifier {name!r}" for name in classifiers if name not in KNOWN_CLASSIFIERS]
    for field in ("License-Expression", "Requires-Python", "Project-URL", "Description-Content-Type"):
        if not metadata.get(field):
            problems.append(f"{wheel.name}: METADATA has no {field}")
    problems += lowest_setuptools_builds_the_same(wheel)
    if problems:
        sys.exit("dist check failed:\n  " + "\n  ".join(problems))
    print(f"built {sdist.name} and {wheel.name}: they hold what they must and nothing they must not")


def run(*args: object, quiet: bool = False, env: dict[str, str] | None = None) -> None:
    """Run `python ARGS`; a quiet run shows its output only if it fails."""
    result = subprocess.run([sys.executable, *map(str, args)], capture_output=quiet, text=True, env=env)
    if result.returncode:
        sys.exit(f"python {' '.join(map(str, args))} failed:\n{result.stdout or ''}{result.stderr or ''}")


def one(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    if len(found) != 1:
        sys.exit(f"expected one {pattern} in {directory}, found {[path.name for path in found]}")
    return found[0]


def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def sdist_names(sdist: Path) -> list[str]:
    with tarfile.open(sdist) as archive:
        # Drop the top directory (django_keyed_storage-0.1.0/).
        return [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]


def wheel_metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        name = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(archive.read(name).decode())


def contents(artifact: Path, names: list[str], must: list[str]) -> list[str]:
    problems = [f"{artifact.name} lacks {pattern}" for pattern in must if not fnmatch.filter(names, pattern)]
    problems += [
        f"{artifact.name} should not hold {name}"
        for name in names
        if any(fnmatch.fnmatch(name, pattern) for pattern in MUST_NOT)
    ]
    return problems


def lowest_setuptools_builds_the_same(wheel: Path) -> list[str]:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    setuptools = next(Requirement(text) for text in requires if Requirement(text).name == "setuptools")
    lowest = next(spec.version for spec in setuptools.specifier if spec.operator == ">=")
    with tempfile.TemporaryDirectory() as scratch:
        # The lowest bound on purpose, past constraints.txt's pin of the newest (PIP_CONSTRAINT).
        unconstrained = {**os.environ, "PIP_CONSTRAINT": ""}
        run("-m", "pip", "install", "--quiet", f"setuptools=={lowest}", quiet=True, env=unconstrained)
        run("-m", "build", "--wheel", "--no-isolation", "--outdir", scratch, ROOT, quiet=True)
        old = one(Path(scratch), "*.whl")
        problems = []
        if sorted(wheel_names(old)) != sorted(wheel_names(wheel)):
            problems.append(f"setuptools {lowest} builds a wheel with other files than the newest does")
        fields = ("Name", "Version", "License-Expression", "Requires-Python", "Requires-Dist", "Classifier")
        new_metadata, old_metadata = wheel_metadata(wheel), wheel_metadata(old)
        problems += [
            f"setuptools {lowest} writes another {field}"
            for field in fields
            if new_metadata.get_all(field) != old_metadata.get_all(field)
        ]
    print(f"setuptools {lowest} (the lowest [build-system] admits) builds the same wheel" * (not problems))
    return problems


if __name__ == "__main__":
    main()
