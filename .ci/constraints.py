"""Write constraints.txt: the exact release of every test, lint, type-check and packaging tool.

`make constraints` runs this in a throwaway virtualenv where the newest releases were just
installed, so refreshing the pins is a deliberate act with its own commit (and `make test`
run on it), never something a fresh machine does on its own. The package's own dependencies
(Django, django-storages, boto3 and what they pull in) are left out on purpose: the matrix
tests the lowest releases pyproject.toml admits and the newest, which pins would hide.
`make drift` (.ci/drift.py) shows how far the pins are behind.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "constraints.txt"

# The package's runtime dependencies and theirs: the matrix chooses these, not the pins.
RUNTIME = {
    canonicalize_name(name)
    for name in (
        "django-keyed-storage",
        "Django",
        "asgiref",
        "sqlparse",
        "tzdata",
        "django-storages",
        "boto3",
        "botocore",
        "s3transfer",
        "jmespath",
        "python-dateutil",
        "six",
        "urllib3",
        "puremagic",
        "tqdm",
    )
}

HEADER = """\
# The test toolchain, pinned: every tool `make test`, `make lint`, `make typecheck`,
# `make docs` and `make dist-check` install, at the release last tried here. pip reads it through
# PIP_CONSTRAINT (setup.cfg) and `-c` (Makefile), so a release published tomorrow cannot change
# what a fresh clone runs. Written by `make constraints` (.ci/constraints.py); `make drift` tries
# the newest releases and reports what differs, without blocking anything. The package's own
# dependencies are not here: the matrix tests the lowest and the newest releases it admits.
"""


def main() -> None:
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable", "--all"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    pins = sorted(
        (line for line in frozen if "==" in line and canonicalize_name(line.split("==")[0]) not in RUNTIME),
        key=lambda line: canonicalize_name(line.split("==")[0]),
    )
    TARGET.write_text(HEADER + "\n".join(pins) + "\n")
    print(f"{TARGET.name}: {len(pins)} pins", file=sys.stderr)


if __name__ == "__main__":
    main()
