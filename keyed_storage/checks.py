"""System checks: half configurations, naming the variable, and local links without an origin."""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.utils.module_loading import import_string

from . import config
from .middleware import RequestOriginMiddleware

MIDDLEWARE = "keyed_storage.middleware.RequestOriginMiddleware"


@register("keyed_storage")
def check_configuration(app_configs=None, **kwargs) -> list[CheckMessage]:
    current, problems = config.inspect()
    messages: list[CheckMessage] = [
        Error(problem.message, hint=problem.hint or None, id=problem.id, obj=problem.variable)
        for problem in problems
    ]
    if current and current.backend == "local" and not current.base_url and "://" not in current.media_url:
        # Local links take their origin from the request being handled, if any.
        messages += [_no_base_url(), *_missing_middleware(), *_any_host_allowed()]
    return messages


def _no_base_url() -> CheckMessage:
    return Warning(
        "KEYED_STORAGE_BASE_URL is not set: local links made outside a request (background jobs, "
        "emails, management commands) raise keyed_storage.exceptions.NoOrigin.",
        hint="Set KEYED_STORAGE_BASE_URL to this site's origin, e.g. KEYED_STORAGE_BASE_URL=https://example.org.",
        id="keyed_storage.W001",
        obj="KEYED_STORAGE_BASE_URL",
    )


def _missing_middleware() -> Iterator[CheckMessage]:
    if any(_is_subclass(path, RequestOriginMiddleware) for path in settings.MIDDLEWARE):
        return
    yield Error(
        f"KEYED_STORAGE_BASE_URL is not set and {MIDDLEWARE} is not in MIDDLEWARE, so local "
        "links have no origin to start with: every one raises keyed_storage.exceptions.NoOrigin.",
        hint=f"Add {MIDDLEWARE!r} at the top of MIDDLEWARE (links then take each request's "
        "origin), or set KEYED_STORAGE_BASE_URL=https://example.org.",
        id="keyed_storage.E010",
        obj="MIDDLEWARE",
    )


def _is_subclass(path: str, cls: type) -> bool:
    try:
        middleware = import_string(path)
    except ImportError:
        return False  # Django reports a middleware that cannot be imported itself
    return isinstance(middleware, type) and issubclass(middleware, cls)


def _any_host_allowed() -> Iterator[CheckMessage]:
    # Django's validate_host() lets "*" match any host; no other pattern does.
    if "*" not in settings.ALLOWED_HOSTS:
        return
    yield Warning(
        "ALLOWED_HOSTS contains '*' and KEYED_STORAGE_BASE_URL is not set, so local links take "
        "whatever Host header a request sends: a forged one makes every file link on the page "
        "point at the sender's host, and a cache in front of the site can serve that page to "
        "everyone.",
        hint="Set KEYED_STORAGE_BASE_URL to this site's origin, e.g. "
        "KEYED_STORAGE_BASE_URL=https://example.org, or list the site's host names in ALLOWED_HOSTS.",
        id="keyed_storage.W002",
        obj="ALLOWED_HOSTS",
    )
