"""Install the lowest release each of the package's own dependencies admits (the -lowest entry).

A lower bound in pyproject.toml says that release works; the matrix entry that runs this
proves it. The bounds are read from pyproject.toml, so they are written in one place only.
What the dependencies themselves need (botocore for boto3, say) pip picks as usual.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def lowest_pins() -> list[str]:
    pins = []
    for text in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        requirement = Requirement(text)
        lower = [spec.version for spec in requirement.specifier if spec.operator in (">=", "==", "~=")]
        if len(lower) != 1:
            sys.exit(f"{text!r}: give it exactly one lower bound (>=), so the lowest release can be tested")
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        pins.append(f"{requirement.name}{extras}=={lower[0]}")
    return pins


def main() -> None:
    pins = lowest_pins()
    print("lowest releases admitted:", " ".join(pins), flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *pins], check=True)
    subprocess.run([sys.executable, "-m", "pip", "check"], check=True)
    names = [Requirement(pin).name for pin in pins]
    print("installed:", ", ".join(f"{name} {version(name)}" for name in names), flush=True)


if __name__ == "__main__":
    main()
