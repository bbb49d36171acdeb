"""path("", include("keyed_storage.urls")) serves local files over real HTTP, and nothing else."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile

from keyed_storage import upload


def raw_get(base: str, path: str) -> int:
    """Send `path` exactly as written (requests would normalise '..' away)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("GET", path)
    status = connection.getresponse().status
    connection.close()
    return status


def test_a_local_file_is_served_with_nosniff(local):
    url = upload(SimpleUploadedFile("notes.txt", b"served by keyed_storage"), "users/1/notes")
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == b"served by keyed_storage"
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert requests.head(url, timeout=10).status_code == 200


def test_a_missing_file_is_404(local):
    assert requests.get(f"{local.url}/media/users/1/nothing-here", timeout=10).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/media/../pyproject.toml",
        "/media/%2e%2e/pyproject.toml",
        "/media/users/..%2f..%2f..%2fpyproject.toml",
        "/media/users/..%5c..%5c..%5cpyproject.toml",
        "/media/users/1/../../../pyproject.toml",
    ],
)
def test_paths_outside_media_root_are_not_served(local, path, settings, tmp_path):
    # MEDIA_ROOT is tmp_path/media: this file sits one level above it.
    (tmp_path / "pyproject.toml").write_text("outside media root")
    assert raw_get(local.url, path) in (400, 404)


def test_a_directory_is_not_listed(local):
    upload(SimpleUploadedFile("a.txt", b"a"), "users/2/docs")
    assert requests.get(f"{local.url}/media/users/2/docs/", timeout=10).status_code == 404


def test_s3_mode_serves_nothing_locally(s3, live_server, settings, tmp_path):
    media = tmp_path / "media" / "left"
    media.mkdir(parents=True)
    (media / "over.txt").write_text("a file left on disk from local days")
    assert requests.get(f"{live_server.url}/media/left/over.txt", timeout=10).status_code == 404
