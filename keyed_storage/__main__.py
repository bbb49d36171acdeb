"""`python -m keyed_storage variables`: print the table of variables the docs' configuration page shows."""

from __future__ import annotations

import sys

from .variables import rst_table

if __name__ == "__main__":
    if sys.argv[1:] != ["variables"]:
        sys.exit(
            "usage: python -m keyed_storage variables  (prints the table of variables as reStructuredText)"
        )
    sys.stdout.write(rst_table())
