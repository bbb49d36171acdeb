"""What the operations (doctor, sync, orphans) ask of a bucket: listings, looks, digests, copies."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from s3transfer.utils import ChunksizeAdjuster

from ..protocols import Digest, Listing, Look, Stored

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import LifecycleRuleOutputTypeDef

from .storage import S3Storing

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


class S3Operations(S3Storing):
    """What doctor, sync and orphans ask of the bucket."""

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

    # Listings (sync, orphans): their errors are StorageErrors, as storage's are. ---------------

    def inventory(self) -> Iterator[tuple[str, int]]:
        """(name, size) of every object in the bucket, in S3's (name) order, 1000 per listing;
        a console's "folder" marker (a name ending in '/') is no file and is left out."""
        with self._failing("list", "the bucket"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket_name):
                for entry in page.get("Contents", ()):
                    if not entry["Key"].endswith("/"):
                        yield entry["Key"], entry["Size"]

    def stored_objects(self, under: str = "") -> Iterator[Stored]:
        """Every object with its size and LastModified, in the server's order (the names' UTF-8
        bytes on AWS; SeaweedFS lists directory by directory), 1000 per ListObjectsV2, streamed;
        a console's "folder" marker (a name ending in '/') is no file and is left out. S3 has no
        temporaries: an unfinished upload is invisible. `under`: only '<under>/...'.

        An object completed from a multipart upload (its ETag ends in '-<parts>') is dated no
        earlier than the latest moment a direct upload of its name can have been finished: AWS
        dates it from the upload's start, and a large upload is finished hours after."""
        from ...direct.tickets import finished_by  # direct uploads build on the backends

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


def _whole_bucket(rule: LifecycleRuleOutputTypeDef) -> bool:
    """Whether a lifecycle rule applies to every key: no filter, or an empty prefix alone."""
    found = rule.get("Filter", {})
    return rule.get("Prefix", "") == "" and (not found or found == {"Prefix": ""})
