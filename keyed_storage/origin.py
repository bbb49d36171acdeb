"""The origin (scheme://host) of the request being handled, for absolute local links."""

from __future__ import annotations

import io
from contextvars import ContextVar

from django.core.signals import request_finished, request_started

# What the request handler announced: a WSGI environ or an ASGI scope, turned into an
# origin only when a local link is actually built during that request.
_request: ContextVar[dict | None] = ContextVar("keyed_storage_request", default=None)
_origin: ContextVar[str | None] = ContextVar("keyed_storage_origin", default=None)


def _started(sender, environ=None, scope=None, **kwargs) -> None:
    _request.set(environ if environ is not None else scope)
    _origin.set(None)


def _finished(sender, **kwargs) -> None:
    _request.set(None)
    _origin.set(None)


def connect() -> None:
    request_started.connect(_started, dispatch_uid="keyed_storage.origin.started")
    request_finished.connect(_finished, dispatch_uid="keyed_storage.origin.finished")


def current_origin() -> str | None:
    """The current request's origin, or None outside a request.

    The host is checked against ALLOWED_HOSTS by Django's own get_host(), which raises
    DisallowedHost (a 400 response) for a forged Host header, so a link never points at it.
    The scheme honours SECURE_PROXY_SSL_HEADER.
    """
    origin = _origin.get()
    if origin is not None:
        return origin
    meta = _request.get()
    if meta is None:
        return None
    if "type" in meta and "headers" in meta:
        from django.core.handlers.asgi import ASGIRequest

        request = ASGIRequest(meta, io.BytesIO())
    else:
        from django.core.handlers.wsgi import WSGIRequest

        request = WSGIRequest(meta)
    origin = f"{request.scheme}://{request.get_host()}"
    _origin.set(origin)
    return origin
