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
    """A file refused: its type or its size is not accepted (or, for a direct upload, it never
    arrived whole). upload() and the validators refuse before anything is stored or deleted;
    keyed_storage.direct.finish_upload() removes the uploaded object first.

    A django.core.exceptions.ValidationError, so forms and the admin show its message.
    """


class FileTypeRefused(FileRefused):
    """The file's type, told from its bytes, matches none of the accepted patterns."""


class FileTooLarge(FileRefused):
    """The file is larger than the size allowed."""


class UploadMissing(FileRefused):
    """A direct upload's object is not in storage: the client never sent it, or it was removed."""


class UploadBroken(FileRefused):
    """A direct upload's object is in storage but cannot be read: the server answers for it
    (its size) and fails every read of it with an error of its own (as after a crash during its
    completion). finish_upload() removes it; the file has to be uploaded again."""


class ReferenceRefused(ValidationError):
    """A direct-upload reference that proves nothing here: altered, expired, or issued for
    another key or another binding (see keyed_storage.direct). Nothing is deleted: what such a
    reference names cannot be trusted."""


class ObjectChanged(StorageError):
    """An object was replaced while it was being checked (its version is no longer the one read)."""


class ObjectUnreadable(StorageError):
    """The storage has the object `name` but failed to read it, every time it was asked: an
    S3 server answered 500 to each attempt, or the disk reported an I/O error. Not raised when
    the server is unreachable or silent (a StorageError: that may pass)."""


class NoOrigin(ImproperlyConfigured):
    """A local link was asked for with no origin to start it: no base URL and no request."""

    def __init__(self, name: str):
        super().__init__(
            f"Cannot make an absolute link to {name!r}: KEYED_STORAGE_BASE_URL is not set and no "
            "request is being handled (this is a background job, an email or a management "
            "command, or keyed_storage.serving.middleware.RequestOriginMiddleware is not in MIDDLEWARE). "
            "Set KEYED_STORAGE_BASE_URL to this site's origin, e.g. "
            "KEYED_STORAGE_BASE_URL=https://example.org."
        )
        self.name = name
