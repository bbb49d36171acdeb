"""Amazon S3 and S3-compatible services, through django-storages' S3Storage and boto3.

S3Backend is one class composed of one mixin per capability, each in its own module: storage
(storing, reading, listing, links), direct (presigned POSTs, publishing), multipart and
operations (doctor, sync, orphans), over base (the client, credentials, errors). One object,
not one per capability, because the capabilities share one boto3 client, one set of
credentials and one signer per process (STYLE: "boto3 is behind one object"), and
django-storages' S3Storage, which every file opened for reading goes through, is that object.
"""

from __future__ import annotations

from .base import PENDING_HEADERS
from .connections import MULTIPART_THRESHOLD, TransferTimeout
from .direct import S3Direct
from .multipart import S3Multipart
from .operations import FILE_PART_SIZE, RECORDED_MD5, S3Operations

__all__ = [
    "FILE_PART_SIZE",
    "MULTIPART_THRESHOLD",
    "PENDING_HEADERS",
    "RECORDED_MD5",
    "S3Backend",
    "TransferTimeout",
]


# S3Storing (storage.py) comes in through S3Direct and S3Operations, which build on it.
class S3Backend(S3Direct, S3Multipart, S3Operations):
    """django-storages' S3Storage with keyed_storage's naming, links, client sharing and errors.

    One boto3 client per process serves every thread (boto3 clients are thread-safe),
    created on first use and again after a fork. Transfers, listing and deletes use it;
    django-storages' per-thread resource is only used to open files for reading.
    """
