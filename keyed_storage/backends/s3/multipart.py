"""S3's multipart direct uploads: CreateMultipartUpload, presigned part PUTs, ListParts, completion."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from ...files.sniffing import ContentInfo
from ..percent import url_path
from ..protocols import Part

if TYPE_CHECKING:
    pass
from .base import PENDING_HEADERS, S3Base, name_taken, object_params


class S3Multipart(S3Base):
    """Multipart direct uploads (keyed_storage.multipart): S3's own multipart uploads, parts
    sent by the browser to presigned PUTs."""

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
                if error.response.get("Error", {}).get("Code") != "NoSuchUpload" and not name_taken(error):
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
