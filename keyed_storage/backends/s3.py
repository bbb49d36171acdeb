"""Amazon S3 and S3-compatible services, through django-storages' S3Storage and boto3."""

from __future__ import annotations

import os
import posixpath
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import IO, TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError
from s3transfer.exceptions import RetriesExceededError
from s3transfer.utils import ChunksizeAdjuster
from storages.backends.s3 import S3File, S3Storage

from ..caching import cache_control
from ..config import Config
from ..exceptions import NameTaken, ObjectChanged, ObjectUnreadable, StorageError
from ..files.sniffing import GENERIC, ContentInfo
from ..keys import has_token
from . import Digest, Head, Listing, Look, Part, Stored
from .percent import url_path
from .presign import Credentials, Presigner

if TYPE_CHECKING:
    from boto3.session import Session
    from botocore.awsrequest import AWSPreparedRequest, AWSResponse
    from django.core.files import File
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import LifecycleRuleOutputTypeDef

MULTIPART_THRESHOLD = 8 * 1024 * 1024
DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys in one request
PART_SIZE = 6 * 1024 * 1024  # S3's minimum is 5 MiB
# store_file() (sync's uploads): parts of 16 MiB, so a file's multipart ETag can be
# recomputed from the file alone; s3transfer enlarges them only past 10,000 parts.
FILE_PART_SIZE = 16 * 1024 * 1024
RECORDED_MD5 = "keyed-storage-md5"  # metadata store_file() sets: a checksum no ETag can hide
READ_CHUNK = 1024 * 1024  # stream(): memory stays flat whatever the object's size
MAX_COPY = 5 * 1024**3  # the largest object one CopyObject request can copy
# The headers refresh_cache_control() keeps, named alike in HeadObject's answer and CopyObject.
KEPT_ON_COPY = (
    "ContentType",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
    "ServerSideEncryption",
    "SSEKMSKeyId",
    "StorageClass",
)
_PLAIN_ETAG = re.compile(r"[0-9a-f]{32}")
_MULTIPART_ETAG = re.compile(r"[0-9a-f]{32}-[0-9]+")
# What a direct upload is stored with until finish_upload() has read its bytes: inert (a
# download of unknown type, kept by no cache), so an object nobody checked can never be shown
# as a page or picture of the site. finish_upload() replaces them with what a save would set.
# CopyObject copies at most 5 GiB; above it, publish() copies ranges of COPY_PART in a
# multipart upload (at most MAX_COPY_PARTS of them, S3's limit).
COPY_LIMIT = 5 * 1024**3
COPY_PART = 1024**3
MAX_COPY_PARTS = 10_000

PENDING_HEADERS = {
    "Content-Type": GENERIC,
    "Content-Disposition": "attachment",
    "Cache-Control": "no-store",
}


def object_params(info: ContentInfo, cache_control: str | None) -> dict[str, str]:
    """The headers S3 stores with an object, as boto3 parameters: decided from its content
    once, for a save (PutObject) and for a checked direct upload (CopyObject) alike."""
    params = {"ContentType": info.content_type}
    if cache_control:
        params["CacheControl"] = cache_control
    if info.attachment:
        params["ContentDisposition"] = "attachment"
    return params


def public_base(config: Config) -> str:
    """Everything a public link has before the object name; computed once per Config."""
    bucket = config.bucket
    if config.custom_domain:
        return config.custom_domain + "/"
    if config.endpoint_url:
        return f"{config.endpoint_url}/{bucket}/"
    region = config.region or "us-east-1"
    host = "s3.amazonaws.com" if region == "us-east-1" else f"s3.{region}.amazonaws.com"
    if "." in bucket:
        # A dotted bucket name does not match the *.s3.amazonaws.com TLS certificate.
        return f"https://{host}/{bucket}/"
    return f"https://{bucket}.{host}/"


def signing_origin(config: Config) -> tuple[str, str]:
    """(origin, path prefix) of the S3 host that presigned links are signed for."""
    bucket = config.bucket
    if config.endpoint_url:
        return config.endpoint_url, f"/{bucket}"
    region = config.region or "us-east-1"
    host = "s3.amazonaws.com" if region == "us-east-1" else f"s3.{region}.amazonaws.com"
    if "." in bucket:
        return f"https://{host}", f"/{bucket}"
    return f"https://{bucket}.{host}", ""


# PUTs of more than this many bytes are transfers (see _is_transfer).
TRANSFER_BODY = 256 * 1024


class TransferTimeout(ReadTimeoutError):
    """A read timeout of a long transfer (KEYED_STORAGE_TRANSFER_TIMEOUT expired, not
    KEYED_STORAGE_READ_TIMEOUT); botocore retries it as any read timeout."""


class TransferConnectTimeout(ConnectTimeoutError):
    """A connect timeout of a long transfer, which waits KEYED_STORAGE_TRANSFER_TIMEOUT too."""


def _transfer_config() -> TransferConfig:
    # Parts of 6 MiB, at most 3 of them held in memory (read ahead or in flight) and 6
    # threads to send them: a 1 GiB stream's upload grows the process by well under 64 MiB
    # (boto3's defaults: over 100 MiB) at boto3's speed (see benchmarks/).
    transfer = TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=PART_SIZE, max_concurrency=6
    )
    transfer.max_in_memory_upload_chunks = 3  # s3transfer's setting, not among boto3's arguments
    # botocore already tries each GET KEYED_STORAGE_MAX_ATTEMPTS times; s3transfer would try a
    # download 5 times more on top, multiplying the time a dead server holds a reader.
    transfer.num_download_attempts = 1
    return transfer


def addressing_style(config: Config) -> Literal["path", "virtual"]:
    return "path" if config.endpoint_url or "." in config.bucket else "virtual"


class S3Backend(S3Storage):  # type: ignore[misc]  # django-storages has no type information
    """django-storages' S3Storage with keyed_storage's naming, links, client sharing and errors.

    One boto3 client per process serves every thread (boto3 clients are thread-safe),
    created on first use and again after a fork. Transfers, listing and deletes use it;
    django-storages' per-thread resource is only used to open files for reading.
    """

    backend = "s3"

    def __init__(self, config: Config):
        self.keyed_config = config
        self._copy_takes_if_none_match: bool | None = None  # known at the first publish
        super().__init__(
            bucket_name=config.bucket,
            access_key=config.access_key,
            secret_key=config.secret_key,
            region_name=config.region,
            endpoint_url=config.endpoint_url,
            querystring_auth=config.private,
            querystring_expire=config.url_expires,
            # New buckets have ACLs disabled; access is the bucket policy's business.
            default_acl=None,
            # Names carry a fresh token, so they are unique without a HEAD request per save.
            file_overwrite=True,
            custom_domain=None,
            location="",
            client_config=_client_config(config, config.connect_timeout, config.read_timeout),
            transfer_config=_transfer_config(),
        )
        self._public_base = public_base(config)
        where = f" at {config.endpoint_url}" if config.endpoint_url else ""
        self._where = f"S3 bucket {config.bucket!r}{where}"
        self._client_lock = threading.Lock()
        self._shared: tuple[int, Session, S3Client] | None = None  # (pid, session, client)
        # Names being written with If-None-Match: * (see store): how many writes of each.
        self._exclusive: Counter[str] = Counter()
        self._exclusive_lock = threading.Lock()
        self._presigner: Presigner | None = None
        self._static_credentials: Credentials | None = None

    def __repr__(self) -> str:
        return f"<S3Backend {self._where}>"

    # One client per process ---------------------------------------------------------------

    def _session_and_client(self) -> tuple[Session, S3Client]:
        shared = self._shared
        if shared is None or shared[0] != os.getpid():
            with self._client_lock:
                shared = self._shared
                if shared is None or shared[0] != os.getpid():
                    session = self._create_session()
                    client = session.client(
                        "s3",
                        region_name=self.region_name,
                        endpoint_url=self.endpoint_url,
                        config=self.client_config,
                    )
                    # s3transfer passes only some arguments on to CompleteMultipartUpload, so
                    # the condition of an exclusive write is added here, for both operations.
                    for operation in ("PutObject", "CompleteMultipartUpload"):
                        client.meta.events.register(
                            f"before-parameter-build.s3.{operation}", self._add_condition
                        )
                    transfers = session.client(
                        "s3",
                        region_name=self.region_name,
                        endpoint_url=self.endpoint_url,
                        # urllib3 sends a request's body under the connect timeout: a large
                        # body needs the transfer timeout there too.
                        config=_client_config(
                            self.keyed_config,
                            self.keyed_config.transfer_timeout,
                            self.keyed_config.transfer_timeout,
                        ),
                    )
                    # botocore offers no per-request timeout (one HTTP session, one timeout), so
                    # long transfers go through the connections of a client that waits longer.
                    # _endpoint is botocore's, unchanged since 2015: the only way to its session.
                    endpoint = client._endpoint
                    endpoint.http_session = _Connections(
                        endpoint.http_session,
                        transfers._endpoint.http_session,
                    )
                    shared = self._shared = (os.getpid(), session, client)
        return shared[1], shared[2]

    @property
    def client(self) -> S3Client:
        """The process's boto3 S3 client (thread-safe, shared)."""
        return self._session_and_client()[1]

    def _frozen_credentials(self) -> Credentials:
        """The credentials to sign links with now. Keys that never change (AWS_KEY and
        AWS_SECRET, or any other static pair) are read once; refreshable ones (an IAM role)
        are asked each time, and botocore renews them when they are about to expire."""
        static = self._static_credentials
        if static is not None:
            return static
        credentials = self._session_and_client()[0].get_credentials()
        if credentials is None:
            raise StorageError(
                f"No AWS credentials for {self._where}: set AWS_KEY and AWS_SECRET, or give the "
                "host an IAM role.",
                location=self.keyed_config.bucket,
            )
        frozen = credentials.get_frozen_credentials()
        # botocore-stubs allow None for both keys; Credentials are only ever made with both.
        mine = Credentials(frozen.access_key, frozen.secret_key, frozen.token)  # type: ignore[arg-type]
        if not isinstance(credentials, RefreshableCredentials):
            self._static_credentials = mine
        return mine

    # Errors --------------------------------------------------------------------------------

    @contextmanager
    def _failing(self, action: str, name: str) -> Iterator[None]:
        """Turn boto3's errors into a StorageError naming the bucket and the key.

        KeyError is among them: s3transfer reads answers by index (response['UploadId']),
        so a server that dies in the middle of an answer surfaces as a KeyError.
        """
        try:
            yield
        except (ClientError, BotoCoreError, Boto3Error, KeyError, RetriesExceededError) as error:
            waited = self._timeout_expired(error)
            if waited:
                raise StorageError(
                    f"Could not {action} {name!r} in {waited}", name=name, location=self.keyed_config.bucket
                ) from error
            # s3transfer's RetriesExceededError wraps a download's error.
            cause: object = error.last_exception if isinstance(error, RetriesExceededError) else error
            if isinstance(error, KeyError):
                cause = f"the server's answer was cut short (no {error})"
            raise StorageError(
                f"Could not {action} {name!r} in {self._where}: {cause}",
                name=name,
                location=self.keyed_config.bucket,
            ) from error

    def _timeout_expired(self, error: BaseException) -> str:
        """'<bucket at endpoint>: <which timeout expired>' if `error` is (or wraps) a timeout, else ''."""
        seen: BaseException | None = error
        while seen is not None and not isinstance(seen, (ReadTimeoutError, ConnectTimeoutError)):
            seen = getattr(seen, "last_exception", None) or seen.__cause__ or seen.__context__
        if seen is None:
            return ""
        cfg = self.keyed_config
        if isinstance(seen, TransferConnectTimeout):
            waited = f"no connection within KEYED_STORAGE_TRANSFER_TIMEOUT={cfg.transfer_timeout:g} s"
        elif isinstance(seen, ConnectTimeoutError):
            waited = f"no connection within KEYED_STORAGE_CONNECT_TIMEOUT={cfg.connect_timeout:g} s"
        elif isinstance(seen, TransferTimeout):
            waited = f"no answer within KEYED_STORAGE_TRANSFER_TIMEOUT={cfg.transfer_timeout:g} s"
        else:
            waited = f"no answer within KEYED_STORAGE_READ_TIMEOUT={cfg.read_timeout:g} s"
        tries = "once" if cfg.max_attempts == 1 else f"{cfg.max_attempts} times"
        where = self._where
        if not cfg.endpoint_url:  # name the host that was silent
            url = urlsplit(str(seen.kwargs.get("endpoint_url", "")))
            where += f" at {url.scheme}://{url.netloc}" if url.netloc else ""
        return f"{where}: {waited}, tried {tries} (KEYED_STORAGE_MAX_ATTEMPTS)."

    # Storage API ---------------------------------------------------------------------------

    def store(
        self,
        name: str,
        content: IO[Any],
        info: ContentInfo,
        *,
        exclusive: bool = False,
        cache_control: str | None = None,
    ) -> str:
        """Upload `content` as `name`. Exclusive: only if no object has that name (a conditional
        write, If-None-Match: *, which AWS and current S3 servers honour), else NameTaken.

        `cache_control` is stored with the object (one header more on the same PUT, or on the
        CreateMultipartUpload of a large file); S3 sends it with every GET of the object.
        """
        params: dict[str, Any] = dict(object_params(info, cache_control))
        if exclusive:
            with self._exclusive_lock:
                self._exclusive[name] += 1
        # Below the threshold, one PutObject sent by this thread: s3transfer's manager (a thread
        # pool per call) costs more than the PUT itself for a small file. Above it, parts, and if
        # any part fails (or the completion's condition does) s3transfer aborts the multipart
        # upload, so no invisible, billed parts remain.
        try:
            with self._failing("store", name):
                try:
                    if (body := _whole_if_small(content, MULTIPART_THRESHOLD)) is not None:
                        self.client.put_object(Bucket=self.bucket_name, Key=name, Body=body, **params)
                    else:
                        self.client.upload_fileobj(
                            # s3transfer only reads, seeks and tells (_KeptOpen does); the stubs ask for IO.
                            _KeptOpen(content),  # type: ignore[arg-type]
                            self.bucket_name,
                            name,
                            ExtraArgs=params,
                            Config=self.transfer_config,
                        )
                except ClientError as error:
                    if exclusive and _name_taken(error):
                        raise NameTaken(name) from error
                    raise
        finally:
            if exclusive:
                with self._exclusive_lock:
                    self._exclusive[name] -= 1
                    if not self._exclusive[name]:
                        del self._exclusive[name]
        return name

    def get_object_parameters(self, name: str) -> dict[str, Any]:
        """django-storages' parameters of writes that bypass store() (sync's uploads, a file
        opened for writing), with the Cache-Control the name calls for. Nothing tells how such
        a file was first saved, so the name's shape decides, as the local view decides it."""
        params = dict(super().get_object_parameters(name))
        params["CacheControl"] = cache_control(self.keyed_config, immutable=has_token(name))
        return params

    def _add_condition(self, params: dict[str, Any], **kwargs: Any) -> None:
        if params.get("Key") in self._exclusive:
            params["IfNoneMatch"] = "*"

    def delete(self, name: str) -> None:
        with self._failing("delete", name):
            self.client.delete_object(Bucket=self.bucket_name, Key=name)

    def names_under(self, key: str) -> list[str]:
        """Every object named '<key>/...', nested keys included: one listing, paginated past 1000."""
        with self._failing("list", key):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket_name, Prefix=key + "/"
            )
            return [entry["Key"] for page in pages for entry in page.get("Contents", ())]

    def inventory(self) -> Iterator[tuple[str, int]]:
        """(name, size) of every object in the bucket, in S3's (name) order, 1000 per listing;
        a console's "folder" marker (a name ending in '/') is no file and is left out."""
        with self._failing("list", "the bucket"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket_name):
                for entry in page.get("Contents", ()):
                    if not entry["Key"].endswith("/"):
                        yield entry["Key"], entry["Size"]

    def names_of_prefix(self, prefix: str) -> list[str]:
        """Names of the object named `prefix` and of every object named '<prefix>/...', sorted."""
        with self._failing("list", prefix):
            # The shortest key starting with 'prefix' is 'prefix' itself: one key tells whether it exists.
            first = self.client.list_objects_v2(Bucket=self.bucket_name, Prefix=prefix, MaxKeys=1)
        exact = [prefix] if [entry["Key"] for entry in first.get("Contents", ())] == [prefix] else []
        return sorted(exact + self.names_under(prefix))

    def delete_prefix(self, prefix: str) -> list[str]:
        """Delete what names_of_prefix() lists (DeleteObjects per 1000) and return those names."""
        names = self.names_of_prefix(prefix)
        if names:
            self.delete_many(names)
        return names

    def delete_many(self, names: list[str]) -> None:
        """Delete `names`: one DeleteObject for one name, else DeleteObjects per 1000 names.

        Raises StorageError naming the objects S3 refused, after trying all of them.
        """
        if len(names) == 1:
            self.delete(names[0])
            return
        failed: list[str] = []
        for start in range(0, len(names), DELETE_BATCH):
            batch = names[start : start + DELETE_BATCH]
            with self._failing("delete", batch[0]):
                answer = self.client.delete_objects(
                    Bucket=self.bucket_name,
                    Delete={"Objects": [{"Key": name} for name in batch], "Quiet": True},
                )
            failed += [
                f"{error.get('Key')} ({error.get('Code')}: {error.get('Message')})"
                for error in answer.get("Errors", ())
            ]
        if failed:
            raise StorageError(
                f"Deleted {len(names) - len(failed)} of {len(names)} objects in {self._where}, but S3 "
                f"refused {len(failed)}: " + "; ".join(failed[:10]),
                location=self.keyed_config.bucket,
            )

    def exists(self, name: str) -> bool:
        with self._failing("look up", name):
            try:
                self.client.head_object(Bucket=self.bucket_name, Key=name)
            except ClientError as error:
                if error.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                    return False
                raise
            return True

    def size(self, name: str) -> int:
        with self._failing("read the size of", name):
            try:
                return self.client.head_object(Bucket=self.bucket_name, Key=name)["ContentLength"]
            except ClientError as error:
                if error.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                    raise FileNotFoundError(f"{name!r} does not exist in {self._where}") from error
                raise

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        prefix = path.rstrip("/") + "/" if path else ""
        directories: list[str] = []
        files: list[str] = []
        with self._failing("list", path):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket_name, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                directories += [
                    entry["Prefix"][len(prefix) :].rstrip("/") for entry in page.get("CommonPrefixes", ())
                ]
                files += [
                    posixpath.relpath(entry["Key"], prefix or ".")
                    for entry in page.get("Contents", ())
                    if entry["Key"] != prefix
                ]
        return directories, files

    def files_starting_with(self, prefix: str) -> list[str]:
        """Names of the objects in `prefix`'s directory that start with `prefix`."""
        with self._failing("list", prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket_name, Prefix=prefix, Delimiter="/"
            )
            return [entry["Key"] for page in pages for entry in page.get("Contents", ())]

    def _open(self, name: str, mode: str = "rb") -> File[Any]:
        with self._failing("open", name):
            opened = super()._open(name, mode)
        # Its bytes are fetched at the first read: errors then are translated too.
        opened.__class__ = _KeyedS3File
        return opened  # type: ignore[no-any-return]  # django-storages is untyped

    def url(
        self,
        name: str,
        parameters: dict[str, Any] | None = None,
        expire: int | None = None,
        http_method: str | None = None,
    ) -> str:
        if not name:
            return self._public_base  # the base every link starts with (Django's url(None))
        if not self.keyed_config.private:
            return self._public_base + url_path(name)
        if parameters or http_method not in (None, "GET"):
            # django-storages is untyped; its url() returns a str.
            return super().url(  # type: ignore[no-any-return]
                name, parameters=parameters, expire=expire, http_method=http_method
            )
        presigner = self._presigner or self._signer()  # an attribute read per link, not a call
        return presigner.url(url_path(name), expire or self.keyed_config.url_expires)

    def _signer(self) -> Presigner:
        presigner = self._presigner
        if presigner is None:
            origin, path_prefix = signing_origin(self.keyed_config)
            presigner = self._presigner = Presigner(
                origin=origin,
                path_prefix=path_prefix,
                region=self.keyed_config.region or "us-east-1",
                credentials=self._frozen_credentials,
            )
        return presigner

    # Every stored object with its time (keyed_storage.ops.orphans) ----------------------------

    def stored_objects(self, under: str = "") -> Iterator[Stored]:
        """Every object with its size and LastModified, in the server's order (the names' UTF-8
        bytes on AWS; SeaweedFS lists directory by directory), 1000 per ListObjectsV2, streamed;
        a console's "folder" marker (a name ending in '/') is no file and is left out. S3 has no
        temporaries: an unfinished upload is invisible. `under`: only '<under>/...'.

        An object completed from a multipart upload (its ETag ends in '-<parts>') is dated no
        earlier than the latest moment a direct upload of its name can have been finished: AWS
        dates it from the upload's start, and a large upload is finished hours after."""
        from ..direct.tickets import finished_by  # direct uploads build on the backends

        with self._failing("list", under or "the bucket"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket_name, Prefix=under + "/" if under else ""
            )
            for page in pages:
                for entry in page.get("Contents", ()):
                    if not entry["Key"].endswith("/"):
                        modified = entry["LastModified"]
                        if "-" in entry.get("ETag", ""):
                            modified = max(modified, finished_by(entry["Key"]) or modified)
                        yield Stored(entry["Key"], entry["Size"], modified)

    # Direct uploads ------------------------------------------------------------------------

    def direct_ticket(self, name: str, *, size: int, expires: int) -> tuple[str, dict[str, str]]:
        """(url, fields) of a presigned POST (S3's browser upload) that may store `name` and
        nothing else, with exactly `size` bytes, stored inert (PENDING_HEADERS), within `expires`
        seconds. S3 checks every condition of the signed policy; signing it is local work."""
        conditions: list[Any] = [{field: value} for field, value in PENDING_HEADERS.items()]
        conditions.append(["content-length-range", size, size])
        with self._failing("sign a direct upload of", name):
            post = self.client.generate_presigned_post(
                Bucket=self.bucket_name,
                Key=name,  # boto3 adds {"key": name} (an exact match) to the conditions
                Fields=dict(PENDING_HEADERS),
                Conditions=conditions,
                ExpiresIn=expires,
            )
        return post["url"], {field: str(value) for field, value in post["fields"].items()}

    def head(self, name: str) -> Head | None:
        """Size and ETag of the object `name` (one HEAD), or None if there is none."""
        with self._failing("look up", name):
            try:
                answer = self.client.head_object(Bucket=self.bucket_name, Key=name)
            except ClientError as error:
                if error.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                    return None
                raise
        return Head(answer["ContentLength"], answer["ETag"])

    def read_start(self, name: str, length: int, version: str) -> bytes:
        """The first `length` bytes of `name` (a ranged GET, never the whole object), if its
        ETag is still `version`; ObjectChanged otherwise."""
        with self._failing("read", name), self._unchanged(name), self._readable(name):
            answer = self.client.get_object(
                Bucket=self.bucket_name, Key=name, Range=f"bytes=0-{length - 1}", IfMatch=version
            )
            return answer["Body"].read()

    def publish(
        self,
        upload: str,
        name: str,
        info: ContentInfo,
        version: str,
        *,
        cache_control: str | None = None,
        size: int = 0,
    ) -> None:
        """Copy the checked object `upload` (of `size` bytes) to the new name `name` with the
        headers a save of the same bytes would have, then delete `upload`. Server-side: no byte
        passes through here.

        The copy is made only if `upload`'s ETag is still `version` (so the bytes published are
        the bytes checked) and only if `name` is free (If-None-Match, where the server honours
        it); NameTaken if it is not. A ticket can write `upload` again until it expires, but
        never `name`. Up to 5 GiB, one CopyObject; beyond (a multipart direct upload can be
        larger, and CopyObject refuses it), a multipart copy of 1 GiB ranges, completed create-only."""
        with self._failing("publish", name):
            try:
                if size > COPY_LIMIT:
                    self._publish_in_parts(upload, name, info, version, cache_control, size)
                else:
                    headers: dict[str, Any] = self._create_only_copy()
                    headers.update(object_params(info, cache_control))
                    self.client.copy_object(
                        Bucket=self.bucket_name,
                        Key=name,
                        CopySource={"Bucket": self.bucket_name, "Key": upload},
                        CopySourceIfMatch=version,
                        MetadataDirective="REPLACE",
                        **headers,
                    )
            except ClientError as error:
                if error.response["ResponseMetadata"]["HTTPStatusCode"] not in (404, 412):
                    raise
                # One status for both conditions: the name taken, or the upload changed.
                if self.head(name) is not None:
                    raise NameTaken(name) from error
                raise ObjectChanged(
                    f"{upload!r} in {self._where} was replaced or removed while it was being checked.",
                    name=upload,
                    location=self.keyed_config.bucket,
                ) from error
        self.delete(upload)

    def _create_only_copy(self) -> dict[str, str]:
        """If-None-Match: * for a CopyObject, where this botocore knows the parameter (S3 added
        it to CopyObject after PutObject: botocore 1.35, the oldest supported, has it for
        PutObject and CompleteMultipartUpload only). Without it finish_upload()'s HEAD of the
        name, just before, is what keeps a published name from being written twice."""
        if self._copy_takes_if_none_match is None:
            copy = self.client.meta.service_model.operation_model("CopyObject")
            members = copy.input_shape.members if copy.input_shape is not None else {}
            self._copy_takes_if_none_match = "IfNoneMatch" in members
        return {"IfNoneMatch": "*"} if self._copy_takes_if_none_match else {}

    def settle(
        self, name: str, info: ContentInfo, version: str, *, cache_control: str | None = None, size: int = 0
    ) -> None:
        """One HEAD; nothing more when `name` has the headers already (the usual case: its bytes
        are what its name and claim announced). Else S3 changes headers only by a copy: the
        object onto itself (if still `version`), in 1 GiB ranges above 5 GiB."""
        wanted = object_params(info, cache_control)
        with self._failing("publish", name):
            try:
                answer = self.client.head_object(Bucket=self.bucket_name, Key=name)
            except ClientError as error:
                if error.response["ResponseMetadata"]["HTTPStatusCode"] != 404:
                    raise
                raise self._changed(name) from error
            if answer["ETag"] != version:
                raise self._changed(name)
            if _stored_headers(answer) == wanted:
                return
            try:
                if size > COPY_LIMIT:
                    self._publish_in_parts(name, name, info, version, cache_control, size, create_only=False)
                else:
                    self.client.copy_object(
                        Bucket=self.bucket_name,
                        Key=name,
                        CopySource={"Bucket": self.bucket_name, "Key": name},
                        CopySourceIfMatch=version,
                        MetadataDirective="REPLACE",
                        **wanted,  # type: ignore[arg-type]
                    )
            except ClientError as error:
                if error.response["ResponseMetadata"]["HTTPStatusCode"] not in (404, 412):
                    raise
                # A finish of the same upload running at the same time may have settled it.
                with suppress(ClientError):
                    if _stored_headers(self.client.head_object(Bucket=self.bucket_name, Key=name)) == wanted:
                        return
                raise self._changed(name) from error

    def _changed(self, name: str) -> ObjectChanged:
        return ObjectChanged(
            f"{name!r} in {self._where} was replaced or removed while it was being checked.",
            name=name,
            location=self.keyed_config.bucket,
        )

    def _publish_in_parts(
        self,
        upload: str,
        name: str,
        info: ContentInfo,
        version: str,
        cache_control: str | None,
        size: int,
        *,
        create_only: bool = True,
    ) -> None:
        """publish() for an object above CopyObject's limit: UploadPartCopy of ranges, each only
        if `upload` is still `version`, then CompleteMultipartUpload only if `name` is free
        (create_only; settle() copies an object onto itself)."""
        started = self.client.create_multipart_upload(
            Bucket=self.bucket_name,
            Key=name,
            **object_params(info, cache_control),  # type: ignore[arg-type]
        )
        upload_id = started["UploadId"]
        part_size = max(COPY_PART, -(-size // MAX_COPY_PARTS))
        try:
            parts = []
            for number, start in enumerate(range(0, size, part_size), start=1):
                copied = self.client.upload_part_copy(
                    Bucket=self.bucket_name,
                    Key=name,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket_name, "Key": upload},
                    CopySourceIfMatch=version,
                    CopySourceRange=f"bytes={start}-{min(start + part_size, size) - 1}",
                )
                parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
            self.client.complete_multipart_upload(
                Bucket=self.bucket_name,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                **({"IfNoneMatch": "*"} if create_only else {}),  # type: ignore[arg-type]
            )
        except BaseException:
            # Best effort: what cannot be aborted now, the lifecycle rule or `orphans` removes.
            with suppress(ClientError, BotoCoreError):
                self.client.abort_multipart_upload(Bucket=self.bucket_name, Key=name, UploadId=upload_id)
            raise

    # Multipart direct uploads (keyed_storage.direct.multipart) --------------------------------------

    def start_parts(
        self, name: str, info: ContentInfo | None = None, *, cache_control: str | None = None
    ) -> str:
        """CreateMultipartUpload for `name` with the headers of `info` and `cache_control`
        (S3 gives them to the object when the upload is completed); without `info`, inert
        (PENDING_HEADERS) as a POST's upload is."""
        if info is None:
            params = {
                "ContentType": PENDING_HEADERS["Content-Type"],
                "ContentDisposition": PENDING_HEADERS["Content-Disposition"],
                "CacheControl": PENDING_HEADERS["Cache-Control"],
            }
        else:
            params = object_params(info, cache_control)
        with self._failing("start a multipart upload of", name):
            answer = self.client.create_multipart_upload(
                Bucket=self.bucket_name,
                Key=name,
                **params,  # type: ignore[arg-type]
            )
        return answer["UploadId"]

    def part_url(self, name: str, upload_id: str, number: int, *, size: int, expires: int) -> str:
        """A presigned UploadPart PUT whose signature covers its Content-Length (see Presigner)."""
        return self._signer().part_url(url_path(name), upload_id, number, size, expires)

    def list_parts(self, name: str, upload_id: str) -> list[Part] | None:
        """ListParts, every page of it; None if S3 knows no such upload (NoSuchUpload).

        One Part per number: SeaweedFS (4.x) lists a part sent twice twice, which
        CompleteMultipartUpload would refuse; the copy listed last is the one kept."""
        parts: dict[int, Part] = {}
        with self._failing("list the parts of", name):
            try:
                pages = self.client.get_paginator("list_parts").paginate(
                    Bucket=self.bucket_name, Key=name, UploadId=upload_id
                )
                for page in pages:
                    for part in page.get("Parts", ()):
                        parts[part["PartNumber"]] = Part(part["PartNumber"], part["Size"], part["ETag"])
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "NoSuchUpload":
                    return None
                raise
        return sorted(parts.values())

    def complete_parts(self, name: str, upload_id: str, parts: list[Part]) -> bool:
        """CompleteMultipartUpload with the parts S3 itself listed (their ETags), so a client
        never has to read an ETag header (which CORS would have to expose); create-only
        (If-None-Match: *). Once completed, the upload id takes no part any more: no part URL
        can change the object."""
        with self._failing("complete the multipart upload of", name):
            try:
                self.client.complete_multipart_upload(
                    Bucket=self.bucket_name,
                    Key=name,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]},
                    IfNoneMatch="*",
                )
            except ClientError as error:
                # Completed by another request since the parts were listed (NoSuchUpload), or
                # a retry of this completion found its own object (the name is taken, and only
                # this upload id writes it): finish_upload() looks at the object itself next.
                if error.response.get("Error", {}).get("Code") != "NoSuchUpload" and not _name_taken(error):
                    raise
                return False
        return True

    def abort_parts(self, name: str, upload_id: str) -> None:
        """AbortMultipartUpload: S3 deletes every part (an unknown upload is fine)."""
        with self._failing("abort the multipart upload of", name):
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket_name, Key=name, UploadId=upload_id)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "NoSuchUpload":
                    raise

    def incomplete_uploads(self) -> Iterator[tuple[str, str, datetime]]:
        """ListMultipartUploads, every page: uploads begun and never completed nor aborted,
        whose parts S3 keeps (and bills) until a lifecycle rule or an abort removes them."""
        with self._failing("list the multipart uploads of", ""):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket_name)
            for page in pages:
                for upload in page.get("Uploads", ()):
                    yield upload["Key"], upload["UploadId"], upload["Initiated"]

    @contextmanager
    def _unchanged(self, name: str) -> Iterator[None]:
        try:
            yield
        except ClientError as error:
            if error.response["ResponseMetadata"]["HTTPStatusCode"] in (404, 412):
                raise ObjectChanged(
                    f"{name!r} in {self._where} was replaced or removed while it was being checked.",
                    name=name,
                    location=self.keyed_config.bucket,
                ) from error
            raise

    @contextmanager
    def _readable(self, name: str) -> Iterator[None]:
        """ObjectUnreadable for 500 (InternalError), the answer botocore has retried
        KEYED_STORAGE_MAX_ATTEMPTS times by then: the server failing to read an object it has.
        502, 503 and 504 (a gateway, SlowDown) mean "later" and stay StorageErrors."""
        try:
            yield
        except ClientError as error:
            if error.response["ResponseMetadata"]["HTTPStatusCode"] != 500:
                raise
            tries = self.keyed_config.max_attempts
            raise ObjectUnreadable(
                f"Could not read {name!r} in {self._where}: the server failed every read of it "
                f"(tried {tries} times, KEYED_STORAGE_MAX_ATTEMPTS): {error}",
                name=name,
                location=self.keyed_config.bucket,
            ) from error

    # Operations: what doctor and sync ask of the bucket ------------------------------------
    # Errors are botocore's own, unwrapped: the doctor explains them (keyed_storage.ops.explain).

    def identity(self) -> str | None:
        """The access key requests are signed with and where it came from; None if boto3's
        credential chain finds none."""
        if self.keyed_config.access_key:
            return f"access key {self.keyed_config.access_key} from AWS_KEY and AWS_SECRET"
        found = self._create_session().get_credentials()
        if found is None:
            return None
        return f"access key {found.access_key} from boto3's chain ({found.method})"

    def region(self) -> str:
        """The bucket's region, from GetBucketLocation: unlike HEAD, its errors carry a code
        (NoSuchBucket, AccessDenied, SignatureDoesNotMatch, ...) and it answers from any region."""
        location = self.client.get_bucket_location(Bucket=self.bucket_name).get("LocationConstraint")
        # us-east-1 answers no constraint at all; 'EU' is the old name of eu-west-1.
        return {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, location)

    def listing(self, prefix: str, limit: int) -> Listing:
        """One ListObjectsV2 of at most `limit` (≤ 1000) names, and the Date the server answered."""
        answer = self.client.list_objects_v2(Bucket=self.bucket_name, Prefix=prefix, MaxKeys=limit)
        date = answer["ResponseMetadata"].get("HTTPHeaders", {}).get("date")
        return Listing(
            [entry["Key"] for entry in answer.get("Contents", ())],
            parsedate_to_datetime(date) if date else None,
        )

    def incomplete_upload_expiry(self) -> int | None:
        """The fewest days any enabled lifecycle rule for the whole bucket gives an unfinished
        multipart upload (AbortIncompleteMultipartUpload) before S3 removes its parts; None if
        no such rule (a rule for some prefix or tags leaves the other keys' parts billed)."""
        try:
            rules = self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket_name)["Rules"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "NoSuchLifecycleConfiguration":
                return None
            raise
        days = [
            rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
            for rule in rules
            if rule.get("Status") == "Enabled"
            and "DaysAfterInitiation" in rule.get("AbortIncompleteMultipartUpload", {})
            and _whole_bucket(rule)
        ]
        return min(days) if days else None

    def browser_origins(self, method: str) -> list[str] | None:
        """The origins the bucket's CORS rules let browsers send `method` requests from (one
        GetBucketCors); [] when it has none, so no page can send it a direct upload."""
        try:
            rules = self.client.get_bucket_cors(Bucket=self.bucket_name)["CORSRules"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "NoSuchCORSConfiguration":
                return []
            raise
        return [
            origin
            for rule in rules
            if method.upper() in (allowed.upper() for allowed in rule.get("AllowedMethods", ()))
            for origin in rule.get("AllowedOrigins", ())
        ]

    def look(self, name: str) -> Look | None:
        """One HEAD of `name`; None if there is no such object."""
        try:
            answer = self.client.head_object(Bucket=self.bucket_name, Key=name)
        except ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise
        return Look(answer["ContentLength"], answer.get("CacheControl"), answer)

    def digest(self, name: str, look: Look, *, recorded: bool = True) -> Digest | None:
        """The checksum the object's headers vouch for. A single-part ETag is the MD5 and a
        multipart one the ETag of the parts, whose size a HEAD of part 1 tells; with SSE-KMS
        an ETag is neither. store_file() records the MD5 in metadata: trusted only when
        `recorded`, never to verify the upload that set it."""
        etag = look.answer.get("ETag", "").strip('"')
        kms = look.answer.get("ServerSideEncryption") == "aws:kms"
        if not kms and _PLAIN_ETAG.fullmatch(etag):
            return Digest(etag)
        if recorded and look.answer.get("Metadata", {}).get(RECORDED_MD5):
            return Digest(look.answer["Metadata"][RECORDED_MD5])
        if not kms and _MULTIPART_ETAG.fullmatch(etag):
            try:
                first = self.client.head_object(Bucket=self.bucket_name, Key=name, PartNumber=1)
            except ClientError:
                return None
            return Digest(etag, first["ContentLength"])
        return None

    def stream(self, name: str) -> Iterator[bytes]:
        """A GET of `name`, 1 MiB at a time; ChecksumMode makes botocore check the object's
        CRC or SHA checksum while streaming, when it has one."""
        body = self.client.get_object(Bucket=self.bucket_name, Key=name, ChecksumMode="ENABLED")["Body"]
        try:
            yield from body.iter_chunks(READ_CHUNK)
        finally:
            body.close()

    def part_size(self, size: int) -> int | None:
        if size < FILE_PART_SIZE:
            return None
        return ChunksizeAdjuster().adjust_chunksize(FILE_PART_SIZE, size)

    def store_file(self, name: str, path: str, *, md5: str, progress: Callable[[int], object]) -> None:
        """Upload the file at `path` with the headers its name calls for and `md5` in metadata.
        From a path, boto3 reads each part lazily from disk; a single PUT is atomic and a
        multipart upload invisible until complete, so an interruption leaves no half object."""
        extra = self._get_write_parameters(name)
        extra["Metadata"] = {**extra.get("Metadata", {}), RECORDED_MD5: md5}
        self.client.upload_file(
            path,
            self.bucket_name,
            name,
            ExtraArgs=extra,
            Callback=progress,
            Config=TransferConfig(
                multipart_threshold=FILE_PART_SIZE, multipart_chunksize=FILE_PART_SIZE, max_concurrency=4
            ),
        )

    def refresh_cache_control(self, name: str, look: Look) -> bool:
        """A copy of `name` onto itself replacing its Cache-Control with the one its name calls
        for, keeping type, metadata, encryption and storage class; no bytes come here. Objects
        over 5 GiB, which one copy cannot take, are left as they are (the doctor reports them)."""
        wanted = self.get_object_parameters(name)["CacheControl"]
        if look.cache_control == wanted or look.size > MAX_COPY:
            return False
        kept = {field: look.answer[field] for field in KEPT_ON_COPY if look.answer.get(field)}
        self.client.copy_object(
            Bucket=self.bucket_name,
            Key=name,
            CopySource={"Bucket": self.bucket_name, "Key": name},
            MetadataDirective="REPLACE",
            Metadata=look.answer.get("Metadata", {}),
            CacheControl=wanted,
            **kept,
        )
        return True


def _is_transfer(request: AWSPreparedRequest) -> bool:
    """Whether a request may rightly keep S3 busy longer than a read timeout: a part
    (UploadPart, UploadPartCopy), completing a multipart upload, a server-side copy, or a PUT
    of more than TRANSFER_BODY bytes, whose body urllib3 sends under the connect timeout."""
    if request.method == "POST":
        return "uploadId=" in request.url
    if request.method != "PUT":
        return False
    return (
        "uploadId=" in request.url
        or "x-amz-copy-source" in request.headers
        or int(request.headers.get("Content-Length") or 0) > TRANSFER_BODY
    )


class _Connections:
    """The shared client's HTTP session: short requests through its own connections, long
    transfers (_is_transfer) through those of a client that waits transfer_timeout. Retries,
    signing, hooks and parsing stay the shared client's."""

    def __init__(self, short: Any, long: Any):
        self._short = short
        self._long = long

    def send(self, request: AWSPreparedRequest) -> AWSResponse:
        if not _is_transfer(request):
            return self._short.send(request)  # type: ignore[no-any-return]
        try:
            return self._long.send(request)  # type: ignore[no-any-return]
        except ReadTimeoutError as error:
            raise TransferTimeout(endpoint_url=request.url, error=error) from error
        except ConnectTimeoutError as error:
            raise TransferConnectTimeout(endpoint_url=request.url, error=error) from error

    def close(self) -> None:
        self._short.close()
        self._long.close()


def _client_config(config: Config, connect_timeout: float, read_timeout: float) -> BotoConfig:
    return BotoConfig(
        signature_version="s3v4",
        s3={"addressing_style": addressing_style(config)},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        # Timeouts, dropped connections, throttling and 5xx answers are retried with backoff,
        # each request tried at most max_attempts times in all.
        retries={"mode": "standard", "total_max_attempts": config.max_attempts},
    )


class _KeyedS3File(S3File):  # type: ignore[misc]  # django-storages has no type information
    """django-storages' S3File whose download (at the first read) fails with a StorageError.
    A body cut short is an error (botocore checks it against Content-Length), never a
    shorter file."""

    def _get_file(self) -> Any:
        try:
            with self._storage._failing("read", self.name):
                return super()._get_file()
        except StorageError:
            # S3File keeps what it wrote so far: forget it, or the next read would return it.
            self._file = None
            raise

    file = property(_get_file, S3File._set_file)


def _whole_bucket(rule: LifecycleRuleOutputTypeDef) -> bool:
    """Whether a lifecycle rule applies to every key: no filter, or an empty prefix alone."""
    found = rule.get("Filter", {})
    return rule.get("Prefix", "") == "" and (not found or found == {"Prefix": ""})


def _stored_headers(answer: Mapping[str, Any]) -> dict[str, str]:
    """The headers object_params() sets, as a HeadObject `answer` shows them."""
    return {
        field: answer[field]
        for field in ("ContentType", "CacheControl", "ContentDisposition")
        if answer.get(field)
    }


def _name_taken(error: ClientError) -> bool:
    # 412: the object exists. 409 ConditionalRequestConflict: another conditional write of
    # the same name is in flight (AWS); either way the name is not ours.
    code = error.response.get("Error", {}).get("Code")
    return code in ("PreconditionFailed", "ConditionalRequestConflict")


def _whole_if_small(content: IO[Any], limit: int) -> bytes | None:
    """The rest of `content` if it can seek and holds at most `limit` bytes, else None (and
    `content` where it was). Its size comes from seeking to the end: nothing is read twice."""
    try:
        start = content.tell()
        end = content.seek(0, os.SEEK_END)
        content.seek(start)
    except (AttributeError, OSError, ValueError):
        return None
    if end - start > limit:
        return None
    data = content.read()
    if not isinstance(data, bytes):  # text: leave it to the streamed path, from where it was
        content.seek(start)
        return None
    return data


class _KeptOpen:
    """The file as s3transfer sees it, minus close(): s3transfer closes the file objects it is
    given, but the caller's file is still needed afterwards (ImageField reads its dimensions)."""

    __slots__ = ("_file",)

    def __init__(self, file: IO[bytes]):
        self._file = file

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def seekable(self) -> bool:
        try:
            return self._file.seekable()
        except (AttributeError, ValueError):
            return False

    def close(self) -> None:
        pass
