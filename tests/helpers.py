"""Helpers shared by the tests: S3 clients for checking, HTTP fetching of links."""

from __future__ import annotations

import json
import os

import boto3
import hypothesis
import requests

# The checkout: tests run the demo project and read the docs and .ci/ from it.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TEST_KEY = "AKIAKEYEDSTORAGETEST"
TEST_SECRET = "keyed-storage-test-secret-value-0123456789"

# The S3 server the S3 tests run against (KEYED_STORAGE_TEST_S3): moto's, the default (in
# process, starts in milliseconds), or SeaweedFS, which checks signatures and presigned links
# as S3 does. Tests that hold on one of them only carry a marker saying why (conftest.py).
S3_SERVERS = ("moto", "seaweedfs")


def s3_server_name() -> str:
    name = os.environ.get("KEYED_STORAGE_TEST_S3") or "moto"
    if name not in S3_SERVERS:
        raise ValueError(f"KEYED_STORAGE_TEST_S3={name!r}: choose one of {', '.join(S3_SERVERS)}")
    return name


def examples(full: int) -> int:
    """A property test's number of examples: `full`, or at most the quick profile's (make quick).

    A count given to @settings overrides the loaded profile, so tests pass theirs through here.
    """
    if hypothesis.settings.get_current_profile_name() == "quick":
        return min(full, hypothesis.settings.default.max_examples)
    return full


def make_client(endpoint: str):
    """A boto3 client of the tests' own, to look at the bucket behind keyed_storage's back."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=TEST_KEY,
        aws_secret_access_key=TEST_SECRET,
    )


def public_read_policy(bucket: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PublicRead",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{bucket}/*",
                }
            ],
        }
    )


def fetch(url: str) -> bytes:
    """GET a link the app handed out, as a browser would, and return the body."""
    assert url.startswith(("http://", "https://")), f"not an absolute URL: {url}"
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, f"GET {url} -> {response.status_code}: {response.text[:300]}"
    return response.content


def png_bytes(width: int = 64, height: int = 48, color: str = "teal") -> bytes:
    """A real PNG made on the spot, so no fixture is downloaded or committed."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def wav_bytes(frames: int = 800) -> bytes:
    """A real WAV file (silence), made with the standard library."""
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * frames)
    return buffer.getvalue()
