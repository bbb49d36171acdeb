"""What a faithful S3 refuses: a wrong secret, and presigned links that expired or were tampered with.

moto's server takes any signature, so these hold only where signatures are checked: SeaweedFS
(KEYED_STORAGE_TEST_S3=seaweedfs), as on AWS. keyed_storage signs private links itself
(backends/presign.py); here a server that verifies SigV4 accepts exactly the links it makes,
for exactly as long as they say.
"""

from __future__ import annotations

import time
import types
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile

from keyed_storage import KeyedStorage, upload
from keyed_storage.backends import presign
from keyed_storage.exceptions import StorageError

from ..helpers import TEST_SECRET, fetch

pytestmark = pytest.mark.seaweedfs_only("moto's server takes any signature; SeaweedFS checks them as S3 does")


def test_a_wrong_secret_is_refused_and_the_error_names_the_problem(s3, env):
    env(AWS_SECRET=TEST_SECRET[:-1] + "X")
    with pytest.raises(StorageError) as raised:
        upload(SimpleUploadedFile("a.txt", b"never stored"), "users/1/notes")
    message = str(raised.value)
    assert "SignatureDoesNotMatch" in message
    assert s3.bucket in message and "users/1/notes/" in message
    assert TEST_SECRET[:-1] not in message
    assert s3.keys() == []


def test_an_unknown_access_key_is_refused(s3, env):
    env(AWS_KEY="AKIANOBODYKNOWSTHIS0")
    with pytest.raises(StorageError, match="InvalidAccessKeyId"):
        upload(SimpleUploadedFile("a.txt", b"never stored"), "users/1/notes")
    assert s3.keys() == []


@pytest.fixture
def private(s3, env):
    """The s3 fixture's bucket made private: no bucket policy, links presigned."""
    s3.client.delete_bucket_policy(Bucket=s3.bucket)
    env(KEYED_STORAGE_PRIVATE="1")
    return s3


def signed_earlier(monkeypatch, seconds: int) -> None:
    """Make keyed_storage's presigner sign as if the clock were `seconds` behind."""
    clock = types.SimpleNamespace(
        time=lambda: time.time() - seconds, gmtime=time.gmtime, strftime=time.strftime
    )
    monkeypatch.setattr(presign, "time", clock)


def status(url: str) -> tuple[int, str]:
    response = requests.get(url, timeout=10)
    return response.status_code, response.text


def test_a_private_link_opens_and_the_plain_link_does_not(private):
    url = upload(SimpleUploadedFile("plan +v2.pdf", b"%PDF-1.4 private"), "users/3/plans")
    assert fetch(url) == b"%PDF-1.4 private"
    code, _ = status(url.split("?", 1)[0])
    assert code == 403


def link_lasting(env, name: str, seconds: int) -> str:
    env(KEYED_STORAGE_URL_EXPIRES=str(seconds))
    return KeyedStorage().url(name)


def test_a_link_within_its_lifetime_opens_and_after_it_is_refused(private, monkeypatch, env):
    name = KeyedStorage().save("users/3/plans/report.pdf", SimpleUploadedFile("r.pdf", b"%PDF-1.4 r"))
    signed_earlier(monkeypatch, 120)  # both links were made two minutes ago
    still_valid = link_lasting(env, name, 600)
    expired = link_lasting(env, name, 60)
    assert "X-Amz-Expires=600&" in still_valid and "X-Amz-Expires=60&" in expired
    assert fetch(still_valid) == b"%PDF-1.4 r"
    code, body = status(expired)
    assert code == 403, body
    assert "expired" in body.lower()


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(changes)
    return parts._replace(query=urlencode(query)).geturl()


def test_a_tampered_link_is_refused(private):
    url = upload(SimpleUploadedFile("a.txt", b"mine"), "users/3/notes")
    other = upload(SimpleUploadedFile("b.txt", b"theirs"), "users/4/notes")
    assert fetch(url) == b"mine"
    signature = dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
    flipped = "0" if signature[-1] != "0" else "1"
    tampered = {
        "another signature": with_query(url, **{"X-Amz-Signature": signature[:-1] + flipped}),
        "a longer lifetime": with_query(url, **{"X-Amz-Expires": "604800"}),
        "another object": other.split("?", 1)[0] + "?" + urlsplit(url).query,
    }
    for change, link in tampered.items():
        code, body = status(link)
        assert code == 403, f"{change}: HTTP {code} {body[:200]}"
        assert "mine" not in body and "theirs" not in body
