"""Least-privilege IAM policy for the app's user, the bucket policy for public links, the
lifecycle rule that clears abandoned multipart uploads, and the CORS rule for direct uploads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..keys import validate_key
from ..variables import BUCKET_PATTERN

if TYPE_CHECKING:
    from ..backends.s3 import S3Backend

VERSION = "2012-10-17"

# What keyed_storage does to a bucket, and nothing more: list a key's earlier objects, find
# the bucket's region, list its unfinished multipart uploads and read its lifecycle and CORS
# rules (doctor checks that one aborts them and the other lets pages upload); read, write
# and delete objects, and clean up after an interrupted multipart upload. No wildcard action
# and no s3:ListAllMyBuckets.
BUCKET_ACTIONS = (
    "s3:ListBucket",
    "s3:GetBucketLocation",
    "s3:ListBucketMultipartUploads",
    "s3:GetLifecycleConfiguration",
    "s3:GetBucketCORS",
)
OBJECT_ACTIONS = (
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)
ACL_ACTION = "s3:PutObjectAcl"

WHOLE_BUCKET = "*"

# An upload unfinished a day after it began is abandoned: a browser resuming one comes back
# within hours, and S3 bills the parts for every day they stay.
ABANDONED_AFTER_DAYS = 1
LIFECYCLE_RULE_ID = "keyed-storage-abort-incomplete-multipart-uploads"


def check_bucket(bucket: str) -> str:
    if not BUCKET_PATTERN.fullmatch(bucket or ""):
        raise ValueError(
            f"{bucket!r} is not a valid S3 bucket name: use 3-63 lowercase letters, digits, dots and "
            "hyphens, starting and ending with a letter or digit."
        )
    return bucket


def uses_acls(backend: S3Backend) -> bool:
    """True when uploads send an ACL (AWS_DEFAULT_ACL, or ACL in AWS_S3_OBJECT_PARAMETERS)."""
    return bool(getattr(backend, "default_acl", None) or (backend.object_parameters or {}).get("ACL"))


def iam_policy(bucket: str, *, acls: bool = False) -> dict[str, Any]:
    """The identity policy to attach to the IAM user (or role) the app runs as."""
    bucket = check_bucket(bucket)
    object_actions = [*OBJECT_ACTIONS, ACL_ACTION] if acls else list(OBJECT_ACTIONS)
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "KeyedStorageBucket",
                "Effect": "Allow",
                "Action": list(BUCKET_ACTIONS),
                "Resource": f"arn:aws:s3:::{bucket}",
            },
            {
                "Sid": "KeyedStorageObjects",
                "Effect": "Allow",
                "Action": object_actions,
                "Resource": f"arn:aws:s3:::{bucket}/*",
            },
        ],
    }


def public_resource(bucket: str, prefix: str) -> str:
    if prefix == WHOLE_BUCKET:
        return f"arn:aws:s3:::{bucket}/*"
    key = validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return f"arn:aws:s3:::{bucket}/{key}/*"


def bucket_policy(bucket: str, prefixes: list[str]) -> dict[str, Any]:
    """The bucket policy that lets anyone GET objects under `prefixes` ('*': the whole bucket)."""
    bucket = check_bucket(bucket)
    resources = sorted({public_resource(bucket, prefix) for prefix in prefixes})
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "KeyedStoragePublicRead",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": resources if len(resources) > 1 else resources[0],
            }
        ],
    }


def lifecycle_configuration(days: int = ABANDONED_AFTER_DAYS) -> dict[str, Any]:
    """The bucket lifecycle configuration that makes S3 abort multipart uploads unfinished
    `days` after they began, removing their parts (invisible to listings, still billed).
    It covers the whole bucket (an empty prefix) and expires no object."""
    if days < 1:
        raise ValueError(f"DaysAfterInitiation must be a whole number of days, at least 1, not {days!r}.")
    return {
        "Rules": [
            {
                "ID": LIFECYCLE_RULE_ID,
                "Status": "Enabled",
                "Filter": {"Prefix": ""},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days},
            }
        ]
    }


# What a browser sends a direct upload with: one POST (presigned), or the PUTs of the parts of
# a multipart one. Browsers cache the answer to the preflight for this long.
BROWSER_METHODS = ("POST", "PUT")
CORS_MAX_AGE = 3600


def check_origin(origin: str) -> str:
    """`origin` if it is one (scheme://host[:port], no path), else ValueError naming it."""
    scheme, _, rest = origin.partition("://")
    if scheme not in ("http", "https") or not rest or "/" in rest or rest.count("*") > 1:
        raise ValueError(
            f"{origin!r} is not an origin: write it as the browser sends it, e.g. https://example.org "
            "(scheme and host, a port if not the default, no path or trailing slash)."
        )
    return origin


def cors_configuration(origins: list[str]) -> dict[str, Any]:
    """The bucket CORS configuration that lets pages of `origins` send direct uploads to it."""
    if not origins:
        raise ValueError("A CORS rule needs at least one origin, e.g. https://example.org.")
    return {
        "CORSRules": [
            {
                "AllowedOrigins": [check_origin(origin) for origin in origins],
                "AllowedMethods": list(BROWSER_METHODS),
                "AllowedHeaders": ["*"],
                "MaxAgeSeconds": CORS_MAX_AGE,
            }
        ]
    }
