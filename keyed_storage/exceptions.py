"""keyed_storage's own errors: each message names the place (bucket or directory) and the key."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured, ValidationError


class StorageError(OSError):
    """Storing, reading or deleting a file failed. The cause is chained as __cause__."""

    def __init__(self, message: str, *, name: str = "", location: str = ""):
        super().__init__(message)
        self.name = name
        self.location = location


class NameTaken(FileExistsError):
    """A conditional write found its name already taken (raised by backends, handled by KeyedStorage)."""


class FileRefused(ValidationError):
    """A file refused before anything was stored or deleted: its type or its size is not accepted.

    A django.core.exceptions.ValidationError, so forms and the admin show its message.
    """


class FileTypeRefused(FileRefused):
    """The file's type, told from its bytes, matches none of the accepted patterns."""


class FileTooLarge(FileRefused):
    """The file is larger than the size allowed."""


class NoOrigin(ImproperlyConfigured):
    """A local link was asked for with no origin to start it: no base URL and no request."""

    def __init__(self, name: str):
        super().__init__(
            f"Cannot make an absolute link to {name!r}: KEYED_STORAGE_BASE_URL is not set and no "
            "request is being handled (this is a background job, an email or a management "
            "command, or keyed_storage.middleware.RequestOriginMiddleware is not in MIDDLEWARE). "
            "Set KEYED_STORAGE_BASE_URL to this site's origin, e.g. "
            "KEYED_STORAGE_BASE_URL=https://example.org."
        )
        self.name = name
