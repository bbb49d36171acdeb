"""Serve local files under MEDIA_URL, so local links work with no web-server set-up."""

from __future__ import annotations

import os

from django.core.exceptions import SuspiciousFileOperation
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils._os import safe_join
from django.views.decorators.csrf import csrf_exempt

from .. import config
from .responses import StoredFile, plain_response, respond


@csrf_exempt  # no state changes here; a POST gets this view's 405, not the CSRF page
def serve(request: HttpRequest, path: str) -> HttpResponse | StreamingHttpResponse:
    """GET or HEAD a file under MEDIA_ROOT in local mode; 404 in S3 mode and for anything not a file."""
    if request.method not in ("GET", "HEAD"):
        return plain_response(405, "Method not allowed.\n", {"Allow": "GET, HEAD"})
    current = config.current()
    if current.backend != "local":
        return plain_response(404, "keyed_storage serves files only in local mode.\n")
    # `path` arrives decoded once by the handler; it is used literally and never decoded
    # again, so a key such as '%2e%2e/x' names a file called '%2e%2e/x'. Segments that a
    # file system would resolve ('..', '.', '') and separators that keys never contain are
    # refused outright; safe_join then guards what is left.
    if "\\" in path or "\x00" in path or any(part in ("", ".", "..") for part in path.split("/")):
        return _not_found()
    try:
        real = _real_path_inside(current.media_root, path)
        stored = StoredFile.open(path, real)
    except (OSError, SuspiciousFileOperation, ValueError):
        return _not_found()
    return respond(request, stored)


def _real_path_inside(root: str, path: str) -> str:
    """The file's real path (symbolic links resolved), refused unless it is inside MEDIA_ROOT:
    a link under MEDIA_ROOT to /etc/passwd is never served."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(safe_join(root, path))
    if not real.startswith(real_root + os.sep):
        raise SuspiciousFileOperation(f"{path!r} resolves outside MEDIA_ROOT")
    return real


def _not_found() -> HttpResponse:
    return plain_response(404, "Not found.\n")
