"""Every intentional difference between KeyedStorage and Django's storage tests, with its reason.

A key is "<peer class>.<test method>" as collected in tests/peer. Each listed test runs as
xfail(strict=True): if it starts passing the run fails, so this list stays true.
"""

DIFFERENCES: dict[str, str] = {}
