"""Peer tests: Django's own storage, FileField and ImageField tests, re-pointed at KeyedStorage."""
