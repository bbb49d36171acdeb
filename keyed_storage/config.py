"""Read the environment (then Django settings) into one validated, frozen Config."""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from .caching import immutable_default

#: Every variable keyed_storage reads, in the order the README documents them.
VARIABLES = (
    "BUCKET_NAME",
    "AWS_KEY",
    "AWS_SECRET",
    "AWS_REGION",
    "AWS_ENDPOINT_URL_S3",
    "KEYED_STORAGE_CUSTOM_DOMAIN",
    "KEYED_STORAGE_PRIVATE",
    "KEYED_STORAGE_URL_EXPIRES",
    "KEYED_STORAGE_BASE_URL",
    "KEYED_STORAGE_KEEP_METADATA",
    "KEYED_STORAGE_CACHE_CONTROL",
    "KEYED_STORAGE_DIRECT_EXPIRES",
    "KEYED_STORAGE_DIRECT_PART_THRESHOLD",
    "KEYED_STORAGE_DIRECT_PART_SIZE",
    # How long to wait for S3 (see "When S3 misbehaves" in the README).
    "KEYED_STORAGE_CONNECT_TIMEOUT",
    "KEYED_STORAGE_READ_TIMEOUT",
    "KEYED_STORAGE_TRANSFER_TIMEOUT",
    "KEYED_STORAGE_MAX_ATTEMPTS",
)

# Variables that only mean something for S3 and are keyed_storage's own. AWS_REGION and
# AWS_ENDPOINT_URL_S3 are left out on purpose: AWS tooling and hosting platforms set them
# for their own reasons, so their presence alone says nothing about where files should go.
S3_ONLY = ("KEYED_STORAGE_CUSTOM_DOMAIN", "KEYED_STORAGE_PRIVATE", "KEYED_STORAGE_URL_EXPIRES")

DEFAULT_URL_EXPIRES = 3600
MAX_URL_EXPIRES = 7 * 24 * 3600  # SigV4 presigned links cannot live longer than a week.
# How long a direct-upload ticket lets its upload begin (see keyed_storage.direct).
DEFAULT_DIRECT_EXPIRES = 3600
# Direct uploads of this many bytes or more are sent in parts (see keyed_storage.multipart),
# of this size at least. S3 refuses parts under 5 MiB (all but the last) and over 5 GiB.
DEFAULT_DIRECT_PART_THRESHOLD = 64 * 1024 * 1024
DEFAULT_DIRECT_PART_SIZE = 16 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024

# How long to wait for S3 ------------------------------------------------------------------
# One request to S3 gives up after MAX_ATTEMPTS tries of at most CONNECT + READ seconds each,
# plus botocore's backoff between them (under 1 s after the first try): 2 x (3 + 10) + 1 =
# 27 s at worst, inside the 30 s a proxy or load balancer gives a web request. S3 answers in
# well under a second; a connection that takes 3 s lost its SYN twice. Long transfers (parts,
# server-side copies, completing a multipart upload, big saves, sync) wait TRANSFER instead
# of READ: S3 takes minutes to copy or assemble gigabytes.
DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_READ_TIMEOUT = 10.0
DEFAULT_TRANSFER_TIMEOUT = 120.0
DEFAULT_MAX_ATTEMPTS = 2
MAX_TIMEOUT = 3600.0
MAX_ATTEMPTS = 10

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
# A Cache-Control value (RFC 9111 §5.2): directives, each a token with an optional token or
# quoted-string argument, separated by commas. Nothing else, so no value can smuggle a CR/LF.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"[\x20\x21\x23-\x5b\x5d-\x7e]*"'  # printable ASCII but '"' and '\'
_DIRECTIVE = rf"{_TOKEN}(?:=(?:{_TOKEN}|{_QUOTED}))?"
_CACHE_CONTROL = re.compile(rf"{_DIRECTIVE}(?:[ \t]*,[ \t]*{_DIRECTIVE})*")


class Secret(str):
    """A str that never shows its value in repr(), so tracebacks and debug pages stay clean."""

    def __repr__(self) -> str:
        return "Secret('********')"


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
    """What the environment asked for, validated. Hashable, so a backend can be cached per Config."""

    backend: str  # "s3" or "local"
    sources: tuple[tuple[str, str], ...] = ()  # (variable, "environment" | "settings")
    bucket: str = ""
    access_key: str | None = None
    secret_key: Secret | None = field(default=None, repr=False)
    region: str | None = None
    endpoint_url: str | None = None
    custom_domain: str | None = None  # "https://cdn.example.org" or with a path prefix
    private: bool = False
    keep_metadata: bool = False  # True: images are stored with their EXIF/XMP (location included)
    url_expires: int = DEFAULT_URL_EXPIRES
    direct_expires: int = DEFAULT_DIRECT_EXPIRES
    direct_part_threshold: int = DEFAULT_DIRECT_PART_THRESHOLD
    direct_part_size: int = DEFAULT_DIRECT_PART_SIZE
    base_url: str | None = None  # origin of local links, without a trailing slash
    media_root: str = ""
    media_url: str = ""
    # Cache-Control of objects whose bytes never change under their name (see keyed_storage.caching).
    cache_control: str = ""
    # How long to wait for S3, in seconds, and how many times to try one request.
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    transfer_timeout: float = DEFAULT_TRANSFER_TIMEOUT
    max_attempts: int = DEFAULT_MAX_ATTEMPTS


def _lookup(name: str, overrides: dict[str, Any]) -> tuple[str | None, str]:
    """The raw value of a variable and where it came from; blank counts as unset."""
    value = os.environ.get(name)
    if value is not None and value.strip():
        return value.strip(), "environment"
    value = overrides.get(name)
    if value is not None and str(value).strip():
        return str(value).strip(), "settings"
    return None, ""


def _origin(value: str, variable: str, problems: list[Problem], *, allow_path: bool) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problems.append(
            Problem(
                "keyed_storage.E006",
                variable,
                f"{variable}={value!r} is not an http(s) URL.",
                "Write it as https://host[:port].",
            )
        )
        return None
    if parts.query or parts.fragment or (parts.path not in ("", "/") and not allow_path):
        problems.append(
            Problem(
                "keyed_storage.E006",
                variable,
                f"{variable}={value!r} must be an origin only (scheme, host and port).",
                "Drop the path, query and fragment; MEDIA_URL supplies the path.",
            )
        )
        return None
    return value.rstrip("/")


def _flag(name: str, value: dict[str, str | None], problems: list[Problem]) -> bool:
    """A boolean variable: 1/true/yes/on or 0/false/no/off (unset: False); E005 otherwise."""
    text = value[name]
    if text is None or text.lower() in _FALSE:
        return False
    if text.lower() in _TRUE:
        return True
    problems.append(
        Problem(
            "keyed_storage.E005",
            name,
            f"{name}={text!r} is not a boolean.",
            "Use 1 or 0 (true/false, yes/no and on/off are accepted too).",
        )
    )
    return False


def _seconds(name: str, value: dict[str, str | None], default: int, problems: list[Problem]) -> int:
    """A lifetime in seconds, 1 to MAX_URL_EXPIRES (unset: `default`); E005 otherwise."""
    text = value[name]
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= MAX_URL_EXPIRES:
        problems.append(
            Problem(
                "keyed_storage.E005",
                name,
                f"{name}={text!r} is not a whole number of seconds between 1 and {MAX_URL_EXPIRES} "
                "(7 days, the SigV4 limit).",
            )
        )
        return default
    return int(text)


def _part_bytes(name: str, value: dict[str, str | None], default: int, problems: list[Problem]) -> int:
    """A part size or threshold in bytes, MIN_PART_SIZE to MAX_PART_SIZE (S3's limits on a
    part; unset: `default`); E005 otherwise."""
    text = value[name]
    if text is None:
        return default
    if not text.isdigit() or not MIN_PART_SIZE <= int(text) <= MAX_PART_SIZE:
        problems.append(
            Problem(
                "keyed_storage.E005",
                name,
                f"{name}={text!r} is not a whole number of bytes between {MIN_PART_SIZE} (5 MiB) "
                f"and {MAX_PART_SIZE} (5 GiB), S3's limits on one part of an upload.",
                "Write it in bytes, e.g. 67108864 for 64 MiB.",
            )
        )
        return default
    return int(text)


def _timeout(name: str, value: dict[str, str | None], default: float, problems: list[Problem]) -> float:
    """A timeout in seconds, decimals allowed, above 0 and at most MAX_TIMEOUT (unset:
    `default`); E005 otherwise."""
    text = value[name]
    if text is None:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds <= MAX_TIMEOUT:  # NaN fails both comparisons
        problems.append(
            Problem(
                "keyed_storage.E005",
                name,
                f"{name}={text!r} is not a number of seconds above 0 and at most {MAX_TIMEOUT:g}.",
                "Write it in seconds, e.g. 10 or 2.5.",
            )
        )
        return default
    return seconds


def _attempts(name: str, value: dict[str, str | None], default: int, problems: list[Problem]) -> int:
    """How many times one request is tried, 1 to MAX_ATTEMPTS (unset: `default`); E005 otherwise."""
    text = value[name]
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= MAX_ATTEMPTS:
        problems.append(
            Problem(
                "keyed_storage.E005",
                name,
                f"{name}={text!r} is not a whole number of attempts between 1 and {MAX_ATTEMPTS}.",
                "1 tries each request once; 2 retries it once.",
            )
        )
        return default
    return int(text)


def _cache_control(text: str | None, private: bool, expires: int, problems: list[Problem]) -> str:
    """KEYED_STORAGE_CACHE_CONTROL, or the default: a year and immutable; private buckets'
    objects private, for no longer than a link to them lives."""
    if text is None:
        return immutable_default(private=private, url_expires=expires)
    if not _CACHE_CONTROL.fullmatch(text):
        problems.append(
            Problem(
                "keyed_storage.E005",
                "KEYED_STORAGE_CACHE_CONTROL",
                f"KEYED_STORAGE_CACHE_CONTROL={text!r} is not a Cache-Control value.",
                "Write directives separated by commas, e.g. 'public, max-age=31536000, immutable'.",
            )
        )
        return ""
    directives = {part.split("=", 1)[0].strip().lower() for part in text.split(",")}
    if private and "public" in directives:
        problems.append(
            Problem(
                "keyed_storage.E011",
                "KEYED_STORAGE_CACHE_CONTROL",
                f"KEYED_STORAGE_CACHE_CONTROL={text!r} says 'public' but KEYED_STORAGE_PRIVATE=1: "
                "shared caches (a CDN, a proxy) would keep private files for anyone who asks.",
                "Use 'private, max-age=<seconds>, immutable', or unset the variable.",
            )
        )
    return text


def inspect(environ_overrides: dict[str, Any] | None = None) -> tuple[Config | None, list[Problem]]:
    """Build the Config, or return every problem found. Never raises for bad values."""
    from django.conf import settings

    overrides = dict(getattr(settings, "KEYED_STORAGE", {}) or {})
    if environ_overrides:
        overrides.update(environ_overrides)
    raw = {name: _lookup(name, overrides) for name in VARIABLES}
    value = {name: v for name, (v, _) in raw.items()}
    sources = tuple((name, src) for name, (v, src) in raw.items() if v is not None)
    problems: list[Problem] = []

    bucket, key, secret = value["BUCKET_NAME"], value["AWS_KEY"], value["AWS_SECRET"]
    if key and not secret:
        problems.append(
            Problem(
                "keyed_storage.E001",
                "AWS_SECRET",
                "AWS_KEY is set but AWS_SECRET is not.",
                "Set both, or neither to use boto3's default credentials (an IAM role).",
            )
        )
    if secret and not key:
        problems.append(
            Problem(
                "keyed_storage.E001",
                "AWS_KEY",
                "AWS_SECRET is set but AWS_KEY is not.",
                "Set both, or neither to use boto3's default credentials (an IAM role).",
            )
        )
    if (key or secret) and not bucket:
        problems.append(
            Problem(
                "keyed_storage.E002",
                "BUCKET_NAME",
                "AWS credentials are set but BUCKET_NAME is not, so files would silently go to "
                "the local disk.",
                "Set BUCKET_NAME, or unset AWS_KEY and AWS_SECRET to store files locally.",
            )
        )
    for name in S3_ONLY:
        if value[name] and not bucket:
            problems.append(
                Problem(
                    "keyed_storage.E003",
                    "BUCKET_NAME",
                    f"{name} is set but BUCKET_NAME is not, so files would silently go to the local disk.",
                    f"Set BUCKET_NAME, or unset {name}.",
                )
            )
    if bucket and not _BUCKET.fullmatch(bucket):
        problems.append(
            Problem(
                "keyed_storage.E004",
                "BUCKET_NAME",
                f"BUCKET_NAME={bucket!r} is not a valid S3 bucket name.",
                "Use 3-63 lowercase letters, digits, dots and hyphens, starting and ending "
                "with a letter or digit.",
            )
        )

    private = _flag("KEYED_STORAGE_PRIVATE", value, problems)
    keep_metadata = _flag("KEYED_STORAGE_KEEP_METADATA", value, problems)

    expires = DEFAULT_URL_EXPIRES
    if value["KEYED_STORAGE_URL_EXPIRES"] is not None:
        text = value["KEYED_STORAGE_URL_EXPIRES"]
        if not text.isdigit() or not 1 <= int(text) <= MAX_URL_EXPIRES:
            problems.append(
                Problem(
                    "keyed_storage.E005",
                    "KEYED_STORAGE_URL_EXPIRES",
                    f"KEYED_STORAGE_URL_EXPIRES={text!r} is not a whole number of seconds "
                    f"between 1 and {MAX_URL_EXPIRES} (7 days, the SigV4 limit).",
                )
            )
        else:
            expires = int(text)
            if not private:
                problems.append(
                    Problem(
                        "keyed_storage.E007",
                        "KEYED_STORAGE_URL_EXPIRES",
                        "KEYED_STORAGE_URL_EXPIRES is set but KEYED_STORAGE_PRIVATE is not 1, so "
                        "links would be public and never expire.",
                        "Set KEYED_STORAGE_PRIVATE=1, or unset KEYED_STORAGE_URL_EXPIRES.",
                    )
                )

    direct_expires = _seconds("KEYED_STORAGE_DIRECT_EXPIRES", value, DEFAULT_DIRECT_EXPIRES, problems)
    part_threshold = _part_bytes(
        "KEYED_STORAGE_DIRECT_PART_THRESHOLD", value, DEFAULT_DIRECT_PART_THRESHOLD, problems
    )
    part_size = _part_bytes("KEYED_STORAGE_DIRECT_PART_SIZE", value, DEFAULT_DIRECT_PART_SIZE, problems)

    connect_timeout = _timeout("KEYED_STORAGE_CONNECT_TIMEOUT", value, DEFAULT_CONNECT_TIMEOUT, problems)
    read_timeout = _timeout("KEYED_STORAGE_READ_TIMEOUT", value, DEFAULT_READ_TIMEOUT, problems)
    transfer_timeout = _timeout("KEYED_STORAGE_TRANSFER_TIMEOUT", value, DEFAULT_TRANSFER_TIMEOUT, problems)
    max_attempts = _attempts("KEYED_STORAGE_MAX_ATTEMPTS", value, DEFAULT_MAX_ATTEMPTS, problems)

    region = value["AWS_REGION"]
    if bucket and region and not _REGION.fullmatch(region):
        problems.append(
            Problem(
                "keyed_storage.E005",
                "AWS_REGION",
                f"AWS_REGION={region!r} is not a region name.",
                "Use a name such as eu-west-1.",
            )
        )

    endpoint = None
    if bucket and value["AWS_ENDPOINT_URL_S3"]:
        endpoint = _origin(value["AWS_ENDPOINT_URL_S3"], "AWS_ENDPOINT_URL_S3", problems, allow_path=False)

    custom_domain = None
    if value["KEYED_STORAGE_CUSTOM_DOMAIN"]:
        text = value["KEYED_STORAGE_CUSTOM_DOMAIN"]
        with_scheme = text if "://" in text else f"https://{text}"
        custom_domain = _origin(with_scheme, "KEYED_STORAGE_CUSTOM_DOMAIN", problems, allow_path=True)
        if private and custom_domain:
            problems.append(
                Problem(
                    "keyed_storage.E008",
                    "KEYED_STORAGE_CUSTOM_DOMAIN",
                    "KEYED_STORAGE_CUSTOM_DOMAIN cannot be combined with KEYED_STORAGE_PRIVATE=1: "
                    "a presigned link is only valid on the S3 host it was signed for.",
                    "Unset one of the two.",
                )
            )

    cache_control = _cache_control(value["KEYED_STORAGE_CACHE_CONTROL"], private, expires, problems)

    base_url = None
    if value["KEYED_STORAGE_BASE_URL"]:
        base_url = _origin(
            value["KEYED_STORAGE_BASE_URL"], "KEYED_STORAGE_BASE_URL", problems, allow_path=False
        )

    media_root = str(settings.MEDIA_ROOT or "")
    media_url = str(settings.MEDIA_URL or "")
    if not bucket:
        if not media_root:
            problems.append(
                Problem(
                    "keyed_storage.E009",
                    "MEDIA_ROOT",
                    "Files are stored on the local disk (BUCKET_NAME is not set) but the MEDIA_ROOT "
                    "setting is empty.",
                    "Set MEDIA_ROOT to an absolute directory, e.g. BASE_DIR / 'media'.",
                )
            )
        if not media_url or media_url == "/":
            problems.append(
                Problem(
                    "keyed_storage.E009",
                    "MEDIA_URL",
                    f"Files are stored on the local disk (BUCKET_NAME is not set) but MEDIA_URL="
                    f"{media_url!r} gives them no URL prefix of their own.",
                    "Set MEDIA_URL, e.g. '/media/'.",
                )
            )

    if problems:
        return None, problems
    config = Config(
        backend="s3" if bucket else "local",
        sources=sources,
        bucket=bucket or "",
        access_key=key,
        secret_key=Secret(secret) if secret else None,
        region=region if bucket else None,
        endpoint_url=endpoint,
        custom_domain=custom_domain,
        private=private,
        keep_metadata=keep_metadata,
        url_expires=expires,
        direct_expires=direct_expires,
        direct_part_threshold=part_threshold,
        direct_part_size=part_size,
        base_url=base_url,
        media_root=media_root,
        media_url=media_url if media_url.endswith("/") else media_url + "/",
        cache_control=cache_control,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        transfer_timeout=transfer_timeout,
        max_attempts=max_attempts,
    )
    return config, []


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
