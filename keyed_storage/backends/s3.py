"""Amazon S3 and S3-compatible services, through django-storages' S3Storage and boto3."""

from __future__ import annotations

from botocore.config import Config as BotoConfig
from storages.backends.s3 import S3Storage

from ..config import Config
from .local import url_path


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
                retries={"mode": "standard"},
            ),
        )
        self._public_base = public_base(config)

    def url(self, name: str, parameters=None, expire=None, http_method=None) -> str:
        if not self.keyed_config.private:
            return self._public_base + url_path(name)
        return super().url(name, parameters=parameters, expire=expire, http_method=http_method)
