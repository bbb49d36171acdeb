"""System checks: half configurations, local links without an origin, columns too short for names."""

from __future__ import annotations

import string
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.apps import AppConfig, apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db.models import FileField
from django.utils.module_loading import import_string

from . import config
from .keys import TOKEN_HEX_CHARS, KeyTemplate
from .serving.middleware import RequestOriginMiddleware
from .storage import KeyedStorage

MIDDLEWARE = "keyed_storage.serving.middleware.RequestOriginMiddleware"

# A stored name is <key>/<token>/<filename>. To judge whether a column can hold one, each
# placeholder of the key is taken as 10 characters (an id up to ten digits) and the filename
# as 40 (a phone's "IMG_20240518_101501.jpg", a "Screenshot 2024-05-18 at 10.15.01.png"). A
# column too short for even these refuses ordinary uploads on PostgreSQL and MySQL, after
# the file is stored (SQLite stores the long value anyway, so tests there pass).
PLACEHOLDER_CHARS = 10
FILENAME_CHARS = 40
SUGGESTED_MAX_LENGTH = 255


@register("keyed_storage")
def check_configuration(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
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


@register(Tags.models, "keyed_storage")
def check_file_name_lengths(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for field in _file_fields(app_configs):
        if not isinstance(field.upload_to, KeyTemplate) or not isinstance(field.storage, KeyedStorage):
            continue
        needed = likely_name_length(field.upload_to)
        if field.max_length is not None and field.max_length < needed:
            messages.append(
                Warning(
                    f"max_length={field.max_length} is too short for the names key_template"
                    f"({field.upload_to.pattern!r}) makes: <key>/<{TOKEN_HEX_CHARS}-digit token>/"
                    f"<filename> is about {needed} characters with ids of {PLACEHOLDER_CHARS} "
                    f"digits and a {FILENAME_CHARS}-character filename. PostgreSQL and MySQL "
                    "refuse a longer name after the file has been stored.",
                    hint=f"Set max_length={SUGGESTED_MAX_LENGTH} on the field (and make a migration).",
                    id="keyed_storage.W003",
                    obj=field,
                )
            )
    return messages


def likely_name_length(template: KeyTemplate) -> int:
    """The length of a name the template makes for an ordinary upload (see FILENAME_CHARS)."""
    literal = sum(len(text) for text, _, _, _ in string.Formatter().parse(template.pattern))
    key = literal + PLACEHOLDER_CHARS * len(template.fields)
    return key + 1 + TOKEN_HEX_CHARS + 1 + FILENAME_CHARS


def _file_fields(app_configs: Iterable[AppConfig] | None) -> Iterator[FileField]:
    models = (
        apps.get_models()
        if app_configs is None
        else (model for app_config in app_configs for model in app_config.get_models())
    )
    for model in models:
        for field in model._meta.local_fields:
            if isinstance(field, FileField):
                yield field
