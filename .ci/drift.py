"""Report how the installed releases differ from constraints.txt (`make drift`; never fails a build).

Run inside the `newest` tox environment, which installs the test toolchain with no
constraints: every line printed is a tool that has moved on since the pins were written.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, pinned = line.split("==", 1)
            found[canonicalize_name(name)] = pinned.strip()
    return found


def main() -> None:
    moved = []
    for name, pinned in sorted(pins().items()):
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue  # a tool of another environment (lint, dist) or of another Python
        if installed != pinned:
            moved.append(f"  {name}: pinned {pinned}, newest here {installed}")
    if moved:
        print(f"{len(moved)} tools have newer releases than constraints.txt:", *moved, sep="\n")
        print("If the suite passed on them, `make constraints` writes them in; commit with the run's result.")
    else:
        print("constraints.txt matches the newest releases.")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
