"""Fail on any function in keyed_storage/ longer than LIMIT lines (issue 20: each readable at once).

Counts from the `def` line to the function's last line, decorators, docstring and comments
included: what a reader has to hold. Run by tox's `lint` entry; stdlib only, so it needs no install.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

LIMIT = 60


def long_functions(root: Path, limit: int = LIMIT) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > limit:
                    found.append(f"{path}:{node.lineno}: {node.name} has {length} lines (limit {limit})")
    return found


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "keyed_storage")
    found = long_functions(root)
    for line in found:
        print(line)
    print(f"{root}: {len(found)} function(s) over {LIMIT} lines")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
