"""S3's side of direct uploads: presigned POSTs, and publishing a checked upload by server-side copy."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ...exceptions import NameTaken, ObjectChanged, ObjectUnreadable
from ...files.sniffing import ContentInfo

if TYPE_CHECKING:
    pass
from .base import PENDING_HEADERS, object_params
from .storage import S3Storing

# CopyObject copies at most 5 GiB; above it, publish() copies ranges of COPY_PART in a
# multipart upload (at most MAX_COPY_PARTS of them, S3's limit).
COPY_LIMIT = 5 * 1024**3
COPY_PART = 1024**3
MAX_COPY_PARTS = 10_000


class S3Direct(S3Storing):
    """Direct uploads (keyed_storage.direct) to the bucket: presigned POSTs, and a checked
    upload published by a server-side copy."""

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


def _stored_headers(answer: Mapping[str, Any]) -> dict[str, str]:
    """The headers object_params() sets, as a HeadObject `answer` shows them."""
    return {
        field: answer[field]
        for field in ("ContentType", "CacheControl", "ContentDisposition")
        if answer.get(field)
    }
