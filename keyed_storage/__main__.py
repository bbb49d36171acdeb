"""`python -m keyed_storage variables`: print the README's table of variables, to paste into it."""

from __future__ import annotations

import sys

from .variables import rst_table

if __name__ == "__main__":
    if sys.argv[1:] != ["variables"]:
        sys.exit("usage: python -m keyed_storage variables  (prints the README's table of variables)")
    sys.stdout.write(rst_table())
