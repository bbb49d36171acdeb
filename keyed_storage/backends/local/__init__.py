"""The local disk under MEDIA_ROOT, through Django's FileSystemStorage.

LocalBackend is one class composed of one mixin per capability, each in its own module:
storage (atomic writes, listings, links), direct (tickets and receiving for keyed_storage's
endpoint, publishing), multipart (a directory of parts per upload) and operations (doctor,
sync, orphans), over base (MEDIA_ROOT, directories, temporaries). One object, not one per
capability, because Django's FileSystemStorage (permissions, path safety) is that object, and
every capability writes with the same modes and the same atomic placing.
"""

from __future__ import annotations

from .base import TEMP_PREFIX, TicketRefused
from .direct import Incoming, LocalDirect
from .multipart import LocalMultipart, PartRefused
from .operations import LocalOperations

__all__ = ["TEMP_PREFIX", "Incoming", "LocalBackend", "PartRefused", "TicketRefused"]


# LocalStoring (storage.py) comes in through LocalDirect and LocalOperations, which build on it.
class LocalBackend(LocalDirect, LocalMultipart, LocalOperations):
    """Files under MEDIA_ROOT, written atomically, linked under MEDIA_URL."""
