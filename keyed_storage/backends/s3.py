"""Amazon S3 and S3-compatible services, through django-storages' S3Storage and boto3."""

from __future__ import annotations

from contextlib import contextmanager

from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from storages.backends.s3 import S3Storage

from ..config import Config
from ..content import ContentInfo
from ..exceptions import StorageError
from .local import url_path

MULTIPART_THRESHOLD = 8 * 1024 * 1024


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


def addressing_style(config: Config) -> str:
    return "path" if config.endpoint_url or "." in config.bucket else "virtual"


class S3Backend(S3Storage):
    backend = "s3"

    def __init__(self, config: Config):
        self.keyed_config = config
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
            client_config=BotoConfig(
                signature_version="s3v4",
                s3={"addressing_style": addressing_style(config)},
                # Throttling and 5xx answers are retried with backoff.
                retries={"mode": "standard", "max_attempts": 3},
            ),
            transfer_config=TransferConfig(multipart_threshold=MULTIPART_THRESHOLD),
        )
        self._public_base = public_base(config)
        where = f" at {config.endpoint_url}" if config.endpoint_url else ""
        self._where = f"S3 bucket {config.bucket!r}{where}"

    def __repr__(self) -> str:
        return f"<S3Backend {self._where}>"

    @contextmanager
    def _failing(self, action: str, name: str):
        """Turn boto3's errors into a StorageError naming the bucket and the key."""
        try:
            yield
        except (ClientError, BotoCoreError, Boto3Error) as error:
            raise StorageError(
                f"Could not {action} {name!r} in {self._where}: {error}",
                name=name,
                location=self.keyed_config.bucket,
            ) from error

    def store(self, name: str, content, info: ContentInfo) -> str:
        params = {"ContentType": info.content_type}
        if info.attachment:
            params["ContentDisposition"] = "attachment"
        # Large files go up in parts; if any part fails, s3transfer aborts the multipart
        # upload so no invisible, billed parts are left behind.
        with self._failing("store", name):
            self.bucket.Object(name).upload_fileobj(content, ExtraArgs=params, Config=self.transfer_config)
        return name

    def delete(self, name: str) -> None:
        with self._failing("delete", name):
            super().delete(name)

    def exists(self, name: str) -> bool:
        with self._failing("look up", name):
            return super().exists(name)

    def listdir(self, name: str):
        with self._failing("list", name):
            return super().listdir(name)

    def size(self, name: str) -> int:
        with self._failing("read the size of", name):
            return super().size(name)

    def _open(self, name: str, mode: str = "rb"):
        with self._failing("open", name):
            return super()._open(name, mode)

    def url(self, name: str, parameters=None, expire=None, http_method=None) -> str:
        if not self.keyed_config.private:
            return self._public_base + url_path(name)
        return super().url(name, parameters=parameters, expire=expire, http_method=http_method)
