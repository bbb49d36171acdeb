"""SigV4 query-string presigning of GET links: string work and two HMACs, no botocore per call.

botocore builds a request object, runs its event system and re-derives the signing key for
every presigned URL (about 200 µs). The signing key only changes once a day (it covers the
date, region and service), so it is cached; what is left per link is the canonical request,
its SHA-256 and one HMAC. The result is byte for byte what botocore produces (tests compare).
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

    __slots__ = ("_credentials", "_host", "_key_cache", "_lock", "_origin", "_path_prefix", "_region")

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

    def url(self, quoted_name: str, expires: int, now: float | None = None) -> str:
        """The presigned GET link of an object whose name is already percent-encoded once."""
        credentials = self._credentials()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
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
        path = f"{self._path_prefix}/{quoted_name}"
        canonical_request = f"GET\n{path}\n{canonical_query}\nhost:{self._host}\n\nhost\nUNSIGNED-PAYLOAD"
        string_to_sign = (
            f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n"
            + hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
        )
        signature = hmac.new(
            self._signing_key(credentials.secret_key, day), string_to_sign.encode("utf-8"), hashlib.sha256
        ).hexdigest()
        return f"{self._origin}{path}?{query}&X-Amz-Signature={signature}"


def _canonical_host(origin: str) -> str:
    scheme, _, host = origin.partition("://")
    default_port = ":443" if scheme == "https" else ":80"
    return host[: -len(default_port)] if host.endswith(default_port) else host
