"""Serve local files under MEDIA_URL, so local links work with no web-server set-up."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.views.static import serve as static_serve

from . import config


def serve(request: HttpRequest, path: str) -> HttpResponse:
    current = config.current()
    if current.backend != "local":
        raise Http404("keyed_storage serves files only in local mode.")
    # `path` arrives decoded once by the handler; it is used literally and never decoded
    # again, so a key such as '%2e%2e/x' names a file called '%2e%2e/x'.
    response = static_serve(request, path, document_root=current.media_root)
    response["X-Content-Type-Options"] = "nosniff"
    return response
