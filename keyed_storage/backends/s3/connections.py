"""The S3 client's connections: short requests wait the read timeout, long transfers the transfer timeout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

from ...config import Config

if TYPE_CHECKING:
    from botocore.awsrequest import AWSPreparedRequest, AWSResponse

MULTIPART_THRESHOLD = 8 * 1024 * 1024
PART_SIZE = 6 * 1024 * 1024  # S3's minimum is 5 MiB
# PUTs of more than this many bytes are transfers (see is_transfer).
TRANSFER_BODY = 256 * 1024


class TransferTimeout(ReadTimeoutError):
    """A read timeout of a long transfer (KEYED_STORAGE_TRANSFER_TIMEOUT expired, not
    KEYED_STORAGE_READ_TIMEOUT); botocore retries it as any read timeout."""


class TransferConnectTimeout(ConnectTimeoutError):
    """A connect timeout of a long transfer, which waits KEYED_STORAGE_TRANSFER_TIMEOUT too."""


def transfer_config() -> TransferConfig:
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


def is_transfer(request: AWSPreparedRequest) -> bool:
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


class Connections:
    """The shared client's HTTP session: short requests through its own connections, long
    transfers (is_transfer) through those of a client that waits transfer_timeout. Retries,
    signing, hooks and parsing stay the shared client's."""

    def __init__(self, short: Any, long: Any):
        self._short = short
        self._long = long

    def send(self, request: AWSPreparedRequest) -> AWSResponse:
        if not is_transfer(request):
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


def client_config(config: Config, connect_timeout: float, read_timeout: float) -> BotoConfig:
    return BotoConfig(
        signature_version="s3v4",
        s3={"addressing_style": addressing_style(config)},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        # Timeouts, dropped connections, throttling and 5xx answers are retried with backoff,
        # each request tried at most max_attempts times in all.
        retries={"mode": "standard", "total_max_attempts": config.max_attempts},
    )
