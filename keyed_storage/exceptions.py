"""keyed_storage's own errors: each message names the place (bucket or directory) and the key."""

from __future__ import annotations


class StorageError(OSError):
    """Storing, reading or deleting a file failed. The cause is chained as __cause__."""

    def __init__(self, message: str, *, name: str = "", location: str = ""):
        super().__init__(message)
        self.name = name
        self.location = location
