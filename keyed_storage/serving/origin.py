"""The origin (scheme://host) of the request being handled, for absolute local links.

RequestOriginMiddleware enters each request here for exactly as long as Django handles it.
A ContextVar keeps concurrent requests apart: each thread (WSGI) and each task (ASGI) sees
its own request, and sync_to_async carries it into the thread a sync view runs in.
Django's request_started signal cannot do this job under ASGI: it is sent with asend(),
whose receivers run in a task with a copy of the handler's context, so a value set there
never reaches the view.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

from django.http import HttpRequest


class NotedRequest:
    """A request being handled, and its origin once a link has asked for it."""

    __slots__ = ("origin", "request")

    def __init__(self, request: HttpRequest):
        self.request = request
        self.origin: str | None = None


_current: ContextVar[NotedRequest | None] = ContextVar("keyed_storage_request", default=None)


def enter(noted: NotedRequest) -> Token[NotedRequest | None]:
    """Make `noted` the current request; hand the token to leave() once it is handled."""
    return _current.set(noted)


def leave(token: Token[NotedRequest | None]) -> None:
    _current.reset(token)


def current_origin() -> str | None:
    """The current request's origin, or None outside a request.

    Worked out when the request's first link asks for it, then kept for the others. The
    host is checked against ALLOWED_HOSTS by Django's own get_host(), which raises
    DisallowedHost (a 400 response) for a forged Host header, so a link never points at it.
    The scheme honours SECURE_PROXY_SSL_HEADER.
    """
    noted = _current.get()
    if noted is None:
        return None
    if noted.origin is None:
        request = noted.request
        noted.origin = f"{request.scheme}://{request.get_host()}"
    return noted.origin
