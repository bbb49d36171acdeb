"""Read the environment (then Django settings) into one validated, frozen Config."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from . import variables
from .variables import TABLE, Invalid, default_cache_control

#: Every variable keyed_storage reads, in the order the docs list them.
VARIABLES = tuple(variable.name for variable in TABLE)

# Variables that only mean something for S3 and are keyed_storage's own: set without
# BUCKET_NAME they are an error (E003). The ambient ones (AWS_REGION, AWS_ENDPOINT_URL_S3) are
# left out on purpose: AWS tooling and hosting platforms set them for their own reasons, so
# their presence alone says nothing about where files should go. The key pair has E001/E002.
S3_ONLY = tuple(
    variable.name
    for variable in TABLE
    if variable.mode == "s3" and not variable.ambient and variable.name.startswith("KEYED_STORAGE_")
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration, naming the variable at fault."""

    id: str
    variable: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


@dataclass(frozen=True)
class Config:
    """What the environment asked for, validated. Hashable, so a backend can be cached per Config.

    Each row of keyed_storage.variables.TABLE fills the attribute its `field` names."""

    backend: str  # "s3" or "local"
    sources: tuple[tuple[str, str], ...] = ()  # (variable, "environment" | "settings")
    bucket: str = ""
    access_key: str | None = None
    secret_key: variables.Secret | None = field(default=None, repr=False)
    region: str | None = None
    endpoint_url: str | None = None
    custom_domain: str | None = None  # "https://cdn.example.org" or with a path prefix
    private: bool = False
    keep_metadata: bool = False  # True: images are stored with their EXIF/XMP (location included)
    url_expires: int = variables.DEFAULT_URL_EXPIRES
    direct_expires: int = variables.DEFAULT_DIRECT_EXPIRES
    direct_part_threshold: int = variables.DEFAULT_DIRECT_PART_THRESHOLD
    direct_part_size: int = variables.DEFAULT_DIRECT_PART_SIZE
    base_url: str | None = None  # origin of local links, without a trailing slash
    media_root: str = ""
    media_url: str = ""
    # Cache-Control of objects whose bytes never change under their name (see keyed_storage.caching).
    cache_control: str = ""
    # How long to wait for S3, in seconds, and how many times to try one request.
    connect_timeout: float = variables.DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = variables.DEFAULT_READ_TIMEOUT
    transfer_timeout: float = variables.DEFAULT_TRANSFER_TIMEOUT
    max_attempts: int = variables.DEFAULT_MAX_ATTEMPTS


def _lookup(name: str, overrides: dict[str, Any]) -> tuple[str | None, str]:
    """The raw value of a variable and where it came from; blank counts as unset."""
    value = os.environ.get(name)
    if value is not None and value.strip():
        return value.strip(), "environment"
    value = overrides.get(name)
    if value is not None and str(value).strip():
        return str(value).strip(), "settings"
    return None, ""


def inspect(environ_overrides: dict[str, Any] | None = None) -> tuple[Config | None, list[Problem]]:
    """Build the Config, or return every problem found. Never raises for bad values."""
    from django.conf import settings

    overrides = dict(getattr(settings, "KEYED_STORAGE", {}) or {})
    if environ_overrides:
        overrides.update(environ_overrides)
    raw = {variable.name: _lookup(variable.name, overrides) for variable in TABLE}
    texts = {name: text for name, (text, _) in raw.items()}
    sources = tuple((name, source) for name, (text, source) in raw.items() if text is not None)
    problems: list[Problem] = []
    values = _parse(texts, problems)
    parsed = {name for name, text in texts.items() if text is not None} - {p.variable for p in problems}
    problems += _credential_problems(texts)
    problems += _combination_problems(texts, values, parsed)
    if values["cache_control"] is None:
        private, expires = values["private"], values["url_expires"]
        values["cache_control"] = default_cache_control(private=private, url_expires=expires)
    media_root = str(settings.MEDIA_ROOT or "")
    media_url = str(settings.MEDIA_URL or "")
    if not texts["BUCKET_NAME"]:
        problems += _local_problems(media_root, media_url)
    if problems:
        return None, problems
    config = Config(
        backend="s3" if values["bucket"] else "local",
        sources=sources,
        media_root=media_root,
        media_url=media_url if media_url.endswith("/") else media_url + "/",
        **values,
    )
    return config, []


def _parse(texts: dict[str, str | None], problems: list[Problem]) -> dict[str, Any]:
    """Each variable's value, or its default when it is unset, does not parse (a problem then),
    or is an ambient one and BUCKET_NAME is not set (local mode ignores it)."""
    values: dict[str, Any] = {}
    for variable in TABLE:
        text = texts[variable.name]
        values[variable.field] = variable.default
        if text is None or (variable.ambient and not texts["BUCKET_NAME"]):
            continue
        try:
            values[variable.field] = variable.parse(variable.name, text)
        except Invalid as invalid:
            problems.append(Problem(invalid.id, variable.name, invalid.message, invalid.hint))
    return values


def _credential_problems(texts: dict[str, str | None]) -> Iterator[Problem]:
    """A key pair half given (E001), or given without a bucket (E002)."""
    bucket, key, secret = texts["BUCKET_NAME"], texts["AWS_KEY"], texts["AWS_SECRET"]
    both = "Set both, or neither to use boto3's default credentials (an IAM role)."
    if key and not secret:
        yield Problem("keyed_storage.E001", "AWS_SECRET", "AWS_KEY is set but AWS_SECRET is not.", both)
    if secret and not key:
        yield Problem("keyed_storage.E001", "AWS_KEY", "AWS_SECRET is set but AWS_KEY is not.", both)
    if (key or secret) and not bucket:
        yield Problem(
            "keyed_storage.E002",
            "BUCKET_NAME",
            "AWS credentials are set but BUCKET_NAME is not, so files would silently go to the local disk.",
            "Set BUCKET_NAME, or unset AWS_KEY and AWS_SECRET to store files locally.",
        )


def _combination_problems(
    texts: dict[str, str | None], values: dict[str, Any], parsed: set[str]
) -> Iterator[Problem]:
    """Values that parse alone but contradict each other (E003, E007, E008, E011)."""
    for name in S3_ONLY:
        if texts[name] and not texts["BUCKET_NAME"]:
            yield Problem(
                "keyed_storage.E003",
                "BUCKET_NAME",
                f"{name} is set but BUCKET_NAME is not, so files would silently go to the local disk.",
                f"Set BUCKET_NAME, or unset {name}.",
            )
    private = values["private"]
    if "KEYED_STORAGE_URL_EXPIRES" in parsed and not private:
        yield Problem(
            "keyed_storage.E007",
            "KEYED_STORAGE_URL_EXPIRES",
            "KEYED_STORAGE_URL_EXPIRES is set but KEYED_STORAGE_PRIVATE is not 1, so links would be "
            "public and never expire.",
            "Set KEYED_STORAGE_PRIVATE=1, or unset KEYED_STORAGE_URL_EXPIRES.",
        )
    if private and values["custom_domain"]:
        yield Problem(
            "keyed_storage.E008",
            "KEYED_STORAGE_CUSTOM_DOMAIN",
            "KEYED_STORAGE_CUSTOM_DOMAIN cannot be combined with KEYED_STORAGE_PRIVATE=1: a presigned "
            "link is only valid on the S3 host it was signed for.",
            "Unset one of the two.",
        )
    cache = values["cache_control"]
    if private and cache and "public" in {part.split("=", 1)[0].strip().lower() for part in cache.split(",")}:
        yield Problem(
            "keyed_storage.E011",
            "KEYED_STORAGE_CACHE_CONTROL",
            f"KEYED_STORAGE_CACHE_CONTROL={cache!r} says 'public' but KEYED_STORAGE_PRIVATE=1: shared "
            "caches (a CDN, a proxy) would keep private files for anyone who asks.",
            "Use 'private, max-age=<seconds>, immutable', or unset the variable.",
        )


def _local_problems(media_root: str, media_url: str) -> Iterator[Problem]:
    """Local mode needs a directory and a URL prefix of its own (E009)."""
    if not media_root:
        yield Problem(
            "keyed_storage.E009",
            "MEDIA_ROOT",
            "Files are stored on the local disk (BUCKET_NAME is not set) but the MEDIA_ROOT setting "
            "is empty.",
            "Set MEDIA_ROOT to an absolute directory, e.g. BASE_DIR / 'media'.",
        )
    if not media_url or media_url == "/":
        yield Problem(
            "keyed_storage.E009",
            "MEDIA_URL",
            f"Files are stored on the local disk (BUCKET_NAME is not set) but MEDIA_URL={media_url!r} "
            "gives them no URL prefix of their own.",
            "Set MEDIA_URL, e.g. '/media/'.",
        )


_lock = threading.Lock()
_current: Config | None = None


def current() -> Config:
    """The active Config, read once and cached; raises ImproperlyConfigured naming the variable."""
    config = _current
    if config is not None:
        return config
    with _lock:
        # Return what this call read or built, not the global again: reset() in another
        # thread (a settings change) may clear it at any moment.
        config = _current
        if config is None:
            config, problems = inspect()
            if problems or config is None:
                raise ImproperlyConfigured("keyed_storage: " + " ".join(str(p) for p in problems))
            _set(config)
        return config


def _set(config: Config | None) -> None:
    global _current
    _current = config


def reset() -> None:
    """Forget the cached Config, so the next use reads the environment again.

    Call it after changing environment variables at run time (tests do); changes to the
    KEYED_STORAGE, MEDIA_ROOT and MEDIA_URL settings reset it by themselves.
    """
    _set(None)


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("KEYED_STORAGE", "MEDIA_ROOT", "MEDIA_URL"):
        reset()
