"""SigV4 query-string presigning of GET links and of upload-part PUTs, without botocore per call.

botocore builds a request object, runs its event system and re-derives the signing key for
every presigned URL (about 200 µs). The signing key only changes once a day (it covers the
date, region and service) and the query string once a second (it carries the time), so both
are cached; what is left per link is the canonical request, its SHA-256 and one HMAC. The
result is byte for byte what botocore produces (tests compare).
Reference: AWS "Authenticating Requests: Using Query Parameters (SigV4)".
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import quote


class Credentials(NamedTuple):
    access_key: str
    secret_key: str
    token: str | None


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


class Presigner:
    """Presigns GET links for one bucket endpoint and region."""

    __slots__ = (
        "_common",
        "_credentials",
        "_host",
        "_key_cache",
        "_lock",
        "_origin",
        "_path_prefix",
        "_region",
        "_stamp",
    )

    def __init__(
        self,
        *,
        origin: str,
        path_prefix: str,
        region: str,
        credentials: Callable[[], Credentials],
    ):
        # origin: 'https://bucket.s3.amazonaws.com'; path_prefix: '' or '/bucket' (path-style).
        self._origin = origin
        self._host = _canonical_host(origin)
        self._path_prefix = path_prefix
        self._region = region
        self._credentials = credentials
        self._key_cache: tuple[str, str, bytes] = ("", "", b"")
        self._lock = threading.Lock()
        # Work that changes once a second, or when the credentials change, not per link.
        self._stamp: tuple[int, str] = (-1, "")
        self._common = _NOTHING_SHARED

    def _signing_key(self, secret: str, day: str) -> bytes:
        cached_secret, cached_day, key = self._key_cache
        if cached_day == day and cached_secret == secret:
            return key
        key = _hmac(f"AWS4{secret}".encode(), day)
        for part in (self._region, "s3", "aws4_request"):
            key = _hmac(key, part)
        with self._lock:
            self._key_cache = (secret, day, key)
        return key

    def _timestamp(self, now: float) -> str:
        second = int(now)
        cached_second, stamp = self._stamp
        if cached_second != second:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
            self._stamp = (second, stamp)  # one tuple: a reader sees the old pair or the new one
        return stamp

    def _shared(self, credentials: Credentials, stamp: str, expires: int) -> _Shared:
        """What every link signed in this second, with these credentials and lifetime, has in common."""
        shared = self._common
        if shared.stamp == stamp and shared.expires == expires and shared.credentials == credentials:
            return shared
        day = stamp[:8]
        scope = f"{day}/{self._region}/s3/aws4_request"
        # Parameters in botocore's order; the canonical form below sorts them by name.
        query = (
            "X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Credential={quote(credentials.access_key, safe='-_.~')}%2F{scope.replace('/', '%2F')}"
            f"&X-Amz-Date={stamp}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host"
        )
        canonical_query = query
        if credentials.token is not None:
            token = quote(credentials.token, safe="-_.~")
            query += f"&X-Amz-Security-Token={token}"
            head, _, signed_headers = canonical_query.rpartition("&")
            canonical_query = f"{head}&X-Amz-Security-Token={token}&{signed_headers}"
        shared = _Shared(
            credentials=credentials,
            stamp=stamp,
            expires=expires,
            query=query,
            # The canonical request around the path, and the string to sign before its hash.
            request_tail=f"\n{canonical_query}\nhost:{self._host}\n\nhost\nUNSIGNED-PAYLOAD",
            to_sign_head=f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n",
            key=self._signing_key(credentials.secret_key, day),
        )
        self._common = shared  # one object: a reader sees the old one or the new one
        return shared

    def url(self, quoted_name: str, expires: int, now: float | None = None) -> str:
        """The presigned GET link of an object whose name is already percent-encoded once."""
        stamp = self._timestamp(time.time() if now is None else now)
        shared = self._shared(self._credentials(), stamp, expires)
        path = f"{self._path_prefix}/{quoted_name}"
        canonical_request = f"GET\n{path}{shared.request_tail}"
        string_to_sign = shared.to_sign_head + hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
        # hmac.digest() is the one-shot C path: no HMAC object per link.
        signature = hmac.digest(shared.key, string_to_sign.encode("utf-8"), "sha256").hex()
        return f"{self._origin}{path}?{shared.query}&X-Amz-Signature={signature}"

    def part_url(
        self, quoted_name: str, upload_id: str, number: int, size: int, expires: int, now: float | None = None
    ) -> str:
        """The presigned PUT (UploadPart) of part `number` of a multipart upload, which S3
        takes only with a body of exactly `size` bytes: Content-Length is a signed header, so
        a client that sends any other length breaks the signature. Not a hot path (a browser
        asks for a few at a time), so nothing is cached beyond the signing key."""
        stamp = self._timestamp(time.time() if now is None else now)
        credentials = self._credentials()
        day = stamp[:8]
        scope = f"{day}/{self._region}/s3/aws4_request"
        parameters = {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"{credentials.access_key}/{scope}",
            "X-Amz-Date": stamp,
            "X-Amz-Expires": str(expires),
            "X-Amz-SignedHeaders": "content-length;host",
            "partNumber": str(number),
            "uploadId": upload_id,
        }
        if credentials.token is not None:
            parameters["X-Amz-Security-Token"] = credentials.token
        # The canonical query: names and values URI-encoded, sorted by encoded name.
        query = "&".join(f"{_encode(name)}={_encode(value)}" for name, value in sorted(parameters.items()))
        path = f"{self._path_prefix}/{quoted_name}"
        canonical_request = (
            f"PUT\n{path}\n{query}\ncontent-length:{size}\nhost:{self._host}\n\n"
            "content-length;host\nUNSIGNED-PAYLOAD"
        )
        string_to_sign = (
            f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n"
            + hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
        )
        key = self._signing_key(credentials.secret_key, day)
        signature = hmac.digest(key, string_to_sign.encode("utf-8"), "sha256").hex()
        return f"{self._origin}{path}?{query}&X-Amz-Signature={signature}"


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


class _Shared(NamedTuple):
    credentials: Credentials | None
    stamp: str
    expires: int
    query: str
    request_tail: str
    to_sign_head: str
    key: bytes


_NOTHING_SHARED = _Shared(None, "", -1, "", "", "", b"")


def _canonical_host(origin: str) -> str:
    scheme, _, host = origin.partition("://")
    default_port = ":443" if scheme == "https" else ":80"
    return host[: -len(default_port)] if host.endswith(default_port) else host
