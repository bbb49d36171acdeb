"""What every S3 capability shares: the Config, one boto3 client per process, credentials, errors."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from boto3.exceptions import Boto3Error
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError
from s3transfer.exceptions import RetriesExceededError
from storages.backends.s3 import S3Storage

from ...config import Config
from ...exceptions import StorageError
from ...files.sniffing import GENERIC, ContentInfo
from ..presign import Credentials, Presigner

if TYPE_CHECKING:
    from boto3.session import Session
    from mypy_boto3_s3 import S3Client

from .connections import Connections, TransferConnectTimeout, TransferTimeout, client_config, transfer_config

# What a direct upload is stored with until finish_upload() has read its bytes: inert (a
# download of unknown type, kept by no cache), so an object nobody checked can never be shown
# as a page or picture of the site. finish_upload() replaces them with what a save would set.
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


class S3Base(S3Storage):  # type: ignore[misc]  # django-storages has no type information
    """django-storages' S3Storage with keyed_storage's client sharing and errors: what every
    capability of S3Backend (keyed_storage.backends.s3) builds on.

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
            client_config=client_config(config, config.connect_timeout, config.read_timeout),
            transfer_config=transfer_config(),
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
                        config=client_config(
                            self.keyed_config,
                            self.keyed_config.transfer_timeout,
                            self.keyed_config.transfer_timeout,
                        ),
                    )
                    # botocore offers no per-request timeout (one HTTP session, one timeout), so
                    # long transfers go through the connections of a client that waits longer.
                    # _endpoint is botocore's, unchanged since 2015: the only way to its session.
                    endpoint = client._endpoint
                    endpoint.http_session = Connections(
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

    def _add_condition(self, params: dict[str, Any], **kwargs: Any) -> None:
        if params.get("Key") in self._exclusive:
            params["IfNoneMatch"] = "*"

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


def name_taken(error: ClientError) -> bool:
    # 412: the object exists. 409 ConditionalRequestConflict: another conditional write of
    # the same name is in flight (AWS); either way the name is not ours.
    code = error.response.get("Error", {}).get("Code")
    return code in ("PreconditionFailed", "ConditionalRequestConflict")
