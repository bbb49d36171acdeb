"""Turn what S3, botocore and HTTP report into a cause in plain words and the fix."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

if TYPE_CHECKING:
    from ..config import Config

POLICY_FIX = (
    "Attach the policy printed by `manage.py keyed_storage policy` to the app's IAM user; it grants {action}."
)
CLOCK_FIX = "Set this machine's clock right (`timedatectl set-ntp true`); S3 refuses requests 15 minutes off."
BLOCKED_FIX = (
    "Print a bucket policy with `manage.py keyed_storage policy --public-read '*' --only bucket`, apply it "
    "with `aws s3api put-bucket-policy`, and let the bucket's Block Public Access settings allow public "
    "bucket policies. Or keep the bucket private and set KEYED_STORAGE_PRIVATE=1 for presigned links."
)
WRONG_REGION = (
    "PermanentRedirect",
    "301",
    "AuthorizationHeaderMalformed",
    "IllegalLocationConstraintException",
)


@dataclass(frozen=True)
class Diagnosis:
    cause: str
    fix: str


def error_code(error: BaseException) -> tuple[str, str, Mapping[str, Any]]:
    """(code, message, response) of the S3 error behind `error`, looking through boto3's wrappers."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ClientError):
            details = seen.response.get("Error", {})
            return str(details.get("Code", "")), str(details.get("Message", "")), seen.response
        seen = seen.__cause__ or seen.__context__
    # boto3's S3UploadFailedError keeps only the text: "... An error occurred (Code) when calling ..."
    found = re.search(r"An error occurred \((\w+)\)", str(error))
    return (found.group(1) if found else ""), str(error), {}


def _timeout(error: BaseException) -> BaseException | None:
    """The timeout behind `error` (keyed_storage's StorageError chains it), if any."""
    seen: BaseException | None = error
    while seen is not None and not isinstance(seen, (ReadTimeoutError, ConnectTimeoutError)):
        seen = seen.__cause__ or seen.__context__
    return seen


def explain(error: BaseException, *, action: str, config: Config) -> Diagnosis:
    """Why `action` (an IAM action such as s3:PutObject) failed, and what to do about it."""
    endpoint = config.endpoint_url or "Amazon S3"
    return (
        _explain_timeout(_timeout(error), config, endpoint)
        or _explain_unreached(error, endpoint)
        or _explain_refusal(error, action, config, endpoint)
    )


def _explain_timeout(timeout: BaseException | None, config: Config, endpoint: str) -> Diagnosis | None:
    """A connection not made, or an answer not given, within the configured time."""
    tries = f"tried {config.max_attempts} time(s) (KEYED_STORAGE_MAX_ATTEMPTS)"
    if isinstance(timeout, ConnectTimeoutError):
        variable, seconds = "KEYED_STORAGE_CONNECT_TIMEOUT", config.connect_timeout
        if type(timeout).__name__ == "TransferConnectTimeout":  # a long transfer's, see TransferTimeout
            variable, seconds = "KEYED_STORAGE_TRANSFER_TIMEOUT", config.transfer_timeout
        return Diagnosis(
            f"No connection to the S3 endpoint ({endpoint}) within {variable}={seconds:g} s, {tries}.",
            "Check AWS_ENDPOINT_URL_S3 (host and port) and the network or firewall between here and it.",
        )
    if isinstance(timeout, ReadTimeoutError):
        variable, seconds = "KEYED_STORAGE_READ_TIMEOUT", config.read_timeout
        if type(timeout).__name__ == "TransferTimeout":  # keyed_storage.backends.s3's, for long transfers
            variable, seconds = "KEYED_STORAGE_TRANSFER_TIMEOUT", config.transfer_timeout
        return Diagnosis(
            f"The S3 endpoint ({endpoint}) accepted the connection but did not answer within "
            f"{variable}={seconds:g} s, {tries}.",
            f"Check that the service is up and not overloaded; if it is slow by nature, raise {variable}.",
        )
    return None


def _explain_unreached(error: BaseException, endpoint: str) -> Diagnosis | None:
    """A request that never got an answer from S3: no connection, or no credentials to sign it."""
    if isinstance(error, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError)):
        return Diagnosis(
            f"The S3 endpoint cannot be reached ({endpoint}): {error}.",
            "Check AWS_ENDPOINT_URL_S3 (host and port), that the service is running, and the network "
            "or firewall between here and it.",
        )
    if isinstance(error, ReadTimeoutError):
        return Diagnosis(f"The S3 endpoint ({endpoint}) stopped answering: {error}.", "Try again later.")
    if isinstance(error, NoCredentialsError):
        return Diagnosis(
            "No AWS credentials were found.",
            "Set AWS_KEY and AWS_SECRET, or run with an IAM role (instance profile, task role).",
        )
    return None


def _explain_refusal(error: BaseException, action: str, config: Config, endpoint: str) -> Diagnosis:
    """What S3 answered with an error code (or a bare status), in plain words."""
    code, message, response = error_code(error)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    bucket = config.bucket
    if code in ("NoSuchBucket", "404") or (code == "" and status == 404):
        return Diagnosis(
            f"The bucket {bucket!r} does not exist at {endpoint}.",
            f"Create it (`aws s3api create-bucket --bucket {bucket}`), or correct BUCKET_NAME.",
        )
    if code in ("AccessDenied", "403", "AllAccessDisabled"):
        return Diagnosis(
            f"Access denied: the credentials (AWS_KEY={config.access_key or 'default chain'}) are not "
            f"allowed {action} on {bucket!r}.",
            POLICY_FIX.format(action=action),
        )
    if code in WRONG_REGION:
        region = response.get("Error", {}).get("Region") or response.get("ResponseMetadata", {}).get(
            "HTTPHeaders", {}
        ).get("x-amz-bucket-region")
        where = f"in {region}" if region else "in another region"
        return Diagnosis(
            f"The bucket {bucket!r} is {where}, but AWS_REGION={config.region or 'us-east-1 (unset)'}.",
            f"Set AWS_REGION={region}." if region else "Set AWS_REGION to the bucket's region.",
        )
    return _explain_code(code, config) or Diagnosis(
        f"S3 answered {code or type(error).__name__}: {message}", "See the message above."
    )


def _explain_code(code: str, config: Config) -> Diagnosis | None:
    """The other error codes whose cause is known: keys, clock, ACLs, expired credentials."""
    if code == "InvalidAccessKeyId":
        return Diagnosis(
            f"S3 does not know the access key AWS_KEY={config.access_key}.",
            "Copy the key id again from the IAM user's security credentials, or create a new access key.",
        )
    if code == "SignatureDoesNotMatch":
        return Diagnosis(
            "S3 refused the request signature: AWS_SECRET does not belong to AWS_KEY.",
            "Copy the secret access key again (it is shown only once; otherwise create a new access key).",
        )
    if code in ("RequestTimeTooSkewed", "RequestExpired"):
        return Diagnosis("This machine's clock is too far from S3's.", CLOCK_FIX)
    if code == "AccessControlListNotSupported":
        return Diagnosis(
            "Uploads send an ACL, but the bucket has ACLs disabled (Object Ownership: bucket owner "
            "enforced, the default for new buckets).",
            "Remove AWS_DEFAULT_ACL and the ACL in AWS_S3_OBJECT_PARAMETERS from settings; make links "
            "public with a bucket policy (`manage.py keyed_storage policy --public-read '*'`) or set "
            "KEYED_STORAGE_PRIVATE=1.",
        )
    if code in ("ExpiredToken", "TokenRefreshRequired"):
        return Diagnosis("The temporary credentials have expired.", "Renew them (or the role session).")
    return None


def explain_get(status: int, code: str, config: Config) -> Diagnosis:
    """Why GET of the app's own link for a fresh object did not answer 200."""
    answered = f"{status} {code}".strip()
    if config.custom_domain:
        return Diagnosis(
            f"The link's host {config.custom_domain} answered {answered}.",
            "Point the CDN's origin at the bucket and let it read the objects (origin access or a "
            "public-read bucket policy), or unset KEYED_STORAGE_CUSTOM_DOMAIN.",
        )
    if code in ("RequestTimeTooSkewed", "RequestExpired"):
        return Diagnosis("The link was refused because this machine's clock is off.", CLOCK_FIX)
    if config.private:
        return Diagnosis(
            f"The presigned link was refused ({answered}): its signature does not hold.",
            "Check AWS_SECRET and AWS_REGION, and that the credentials may s3:GetObject.",
        )
    if status == 403:
        return Diagnosis(
            f"Anonymous GET of the public link was refused ({answered}): Block Public Access is "
            "on, or no bucket policy lets everyone s3:GetObject.",
            BLOCKED_FIX,
        )
    if status in (301, 307, 400):
        return Diagnosis(
            f"The link points at the wrong host ({answered}).",
            "Set AWS_REGION to the bucket's region (and AWS_ENDPOINT_URL_S3 for an S3-compatible service).",
        )
    return Diagnosis(f"The link answered {answered}.", "Check AWS_ENDPOINT_URL_S3 and AWS_REGION.")
