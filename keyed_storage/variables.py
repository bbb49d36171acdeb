"""The one table of the variables keyed_storage reads: config parses it, doctor shows it, the docs list it.

Each row says everything about one variable: its name, the Config attribute it fills, how its
text is parsed, its default, where it means something (S3, the local disk or both), whether it
is a secret, and its description for the docs. To add a variable, add a row to TABLE and the
attribute to config.Config; `python -m keyed_storage variables` prints the docs' table
again, and tests/core/test_config_variables.py fails until config, checks, doctor and the docs
all know the new variable.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from .numbers import whole_number

DEFAULT_URL_EXPIRES = 3600
MAX_URL_EXPIRES = 7 * 24 * 3600  # SigV4 presigned links cannot live longer than a week.
# How long a direct-upload ticket lets its upload begin (see keyed_storage.direct).
DEFAULT_DIRECT_EXPIRES = 3600
# Direct uploads of this many bytes or more are sent in parts (see keyed_storage.direct.multipart),
# of this size at least. S3 refuses parts under 5 MiB (all but the last) and over 5 GiB.
DEFAULT_DIRECT_PART_THRESHOLD = 64 * 1024 * 1024
DEFAULT_DIRECT_PART_SIZE = 16 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
# The Cache-Control tokened objects get when KEYED_STORAGE_CACHE_CONTROL is not set: their bytes
# never change under their name (see keyed_storage.caching), so caches may keep them a year.
YEAR = 365 * 24 * 3600
IMMUTABLE = f"public, max-age={YEAR}, immutable"

# How long to wait for S3. One request gives up after MAX_ATTEMPTS tries of at most CONNECT +
# READ seconds each, plus botocore's backoff between them (under 1 s after the first try):
# 2 x (3 + 10) + 1 = 27 s at worst, inside the 30 s a proxy or load balancer gives a web
# request. S3 answers in well under a second; a connection that takes 3 s lost its SYN twice.
# Long transfers (parts, server-side copies, completing a multipart upload, big saves, sync)
# wait TRANSFER instead of READ: S3 takes minutes to copy or assemble gigabytes.
DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_READ_TIMEOUT = 10.0
DEFAULT_TRANSFER_TIMEOUT = 120.0
DEFAULT_MAX_ATTEMPTS = 2
MAX_TIMEOUT = 3600.0
MAX_ATTEMPTS = 10

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
BUCKET_PATTERN = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
# A Cache-Control value (RFC 9111 §5.2): directives, each a token with an optional token or
# quoted-string argument, separated by commas. Nothing else, so no value can smuggle a CR/LF.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"[\x20\x21\x23-\x5b\x5d-\x7e]*"'  # printable ASCII but '"' and '\'
_DIRECTIVE = rf"{_TOKEN}(?:=(?:{_TOKEN}|{_QUOTED}))?"
_CACHE_CONTROL = re.compile(rf"{_DIRECTIVE}(?:[ \t]*,[ \t]*{_DIRECTIVE})*")

Mode = Literal["s3", "local", "both"]


class Secret(str):
    """A str that never shows its value in repr(), so tracebacks and debug pages stay clean."""

    def __repr__(self) -> str:
        return "Secret('********')"


class Invalid(ValueError):
    """A variable's text does not parse: the check id, the message naming it, and the fix."""

    def __init__(self, id: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.id = id
        self.message = message
        self.hint = hint


Parser = Callable[[str, str], Any]  # (variable name, its stripped, non-blank text) -> value


@dataclass(frozen=True)
class Variable:
    name: str
    field: str  # the config.Config attribute it fills
    parse: Parser  # raises Invalid
    default: Any  # what the attribute holds when the variable is unset
    mode: Mode  # where it means something
    description: str  # reStructuredText, for the docs' table
    example: str  # a value that parses: the tests set it, with the variables it needs
    invalid: str | None  # a value that does not parse; None when any text is accepted
    secret: bool = False  # never shown: doctor prints "(set, not shown)"
    # Set by AWS tooling and hosting platforms for their own reasons: ignored where it does
    # not apply, rather than an error.
    ambient: bool = False


# Parsers -----------------------------------------------------------------------------------


def text(name: str, value: str) -> str:
    return value


def secret(name: str, value: str) -> Secret:
    return Secret(value)


def bucket(name: str, value: str) -> str:
    if not BUCKET_PATTERN.fullmatch(value):
        raise Invalid(
            "keyed_storage.E004",
            f"{name}={value!r} is not a valid S3 bucket name.",
            "Use 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter "
            "or digit.",
        )
    return value


def region(name: str, value: str) -> str:
    if not _REGION.fullmatch(value):
        raise Invalid(
            "keyed_storage.E005", f"{name}={value!r} is not a region name.", "Use a name such as eu-west-1."
        )
    return value


def _origin(name: str, value: str, *, allow_path: bool) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(
            "keyed_storage.E006",
            f"{name}={value!r} is not an http(s) URL.",
            "Write it as https://host[:port].",
        )
    if parts.query or parts.fragment or (parts.path not in ("", "/") and not allow_path):
        raise Invalid(
            "keyed_storage.E006",
            f"{name}={value!r} must be an origin only (scheme, host and port).",
            "Drop the path, query and fragment; MEDIA_URL supplies the path.",
        )
    return value.rstrip("/")


def origin(name: str, value: str) -> str:
    """scheme://host[:port], without a trailing slash."""
    return _origin(name, value, allow_path=False)


def host_with_path(name: str, value: str) -> str:
    """A host or an http(s) URL with an optional path prefix; https when no scheme is given."""
    return _origin(name, value if "://" in value else f"https://{value}", allow_path=True)


def flag(name: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise Invalid(
        "keyed_storage.E005",
        f"{name}={value!r} is not a boolean.",
        "Use 1 or 0 (true/false, yes/no and on/off are accepted too).",
    )


def seconds(name: str, value: str) -> int:
    """A lifetime in seconds, 1 to MAX_URL_EXPIRES."""
    number = whole_number(value, maximum=MAX_URL_EXPIRES)
    if not number:
        raise Invalid(
            "keyed_storage.E005",
            f"{name}={value!r} is not a whole number of seconds between 1 and {MAX_URL_EXPIRES} "
            "(7 days, the SigV4 limit).",
        )
    return number


def part_bytes(name: str, value: str) -> int:
    """A part size or threshold in bytes, within S3's limits on one part."""
    size = whole_number(value, maximum=MAX_PART_SIZE)
    if size is None or size < MIN_PART_SIZE:
        raise Invalid(
            "keyed_storage.E005",
            f"{name}={value!r} is not a whole number of bytes between {MIN_PART_SIZE} (5 MiB) "
            f"and {MAX_PART_SIZE} (5 GiB), S3's limits on one part of an upload.",
            "Write it in bytes, e.g. 67108864 for 64 MiB.",
        )
    return size


def timeout(name: str, value: str) -> float:
    """Seconds, decimals allowed, above 0 and at most MAX_TIMEOUT."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds <= MAX_TIMEOUT:  # NaN fails both comparisons
        raise Invalid(
            "keyed_storage.E005",
            f"{name}={value!r} is not a number of seconds above 0 and at most {MAX_TIMEOUT:g}.",
            "Write it in seconds, e.g. 10 or 2.5.",
        )
    return seconds


def attempts(name: str, value: str) -> int:
    """How many times one request is tried in all, 1 to MAX_ATTEMPTS."""
    number = whole_number(value, maximum=MAX_ATTEMPTS)
    if not number:
        raise Invalid(
            "keyed_storage.E005",
            f"{name}={value!r} is not a whole number of attempts between 1 and {MAX_ATTEMPTS}.",
            "1 tries each request once; 2 retries it once.",
        )
    return number


def cache_control(name: str, value: str) -> str:
    if not _CACHE_CONTROL.fullmatch(value):
        raise Invalid(
            "keyed_storage.E005",
            f"{name}={value!r} is not a Cache-Control value.",
            "Write directives separated by commas, e.g. 'public, max-age=31536000, immutable'.",
        )
    return value


def default_cache_control(*, private: bool, url_expires: int) -> str:
    """KEYED_STORAGE_CACHE_CONTROL when it is not set. A private object is cached by the browser
    alone, and no longer than the presigned link that fetched it was valid."""
    if private:
        return f"private, max-age={url_expires}, immutable"
    return IMMUTABLE


# The table, in the docs' order --------------------------------------------------------------

TABLE: tuple[Variable, ...] = (
    Variable(
        "BUCKET_NAME", "bucket", bucket, "", "s3",
        "S3 bucket. Its presence selects S3; without it files go to ``MEDIA_ROOT``.",
        example="site-media", invalid="Site_Media",
    ),
    Variable(
        "AWS_KEY", "access_key", text, None, "s3",
        "Access key id; with ``AWS_SECRET`` or not at all. Neither means boto3's default "
        "credential chain (an IAM role, ``AWS_ACCESS_KEY_ID``, ...).",
        example="AKIAEXAMPLE", invalid=None,
    ),
    Variable(
        "AWS_SECRET", "secret_key", secret, None, "s3",
        "Secret access key; with ``AWS_KEY`` or not at all.",
        example="example-secret-0123456789", invalid=None, secret=True,
    ),
    Variable(
        "AWS_REGION", "region", region, None, "s3",
        "The bucket's region; links use the regional host outside ``us-east-1``. Ignored in local mode.",
        example="us-east-1", invalid="EU West", ambient=True,
    ),
    Variable(
        "AWS_ENDPOINT_URL_S3", "endpoint_url", origin, None, "s3",
        "An S3-compatible service (MinIO, Ceph, R2, a local test server), as "
        "``http(s)://host[:port]``. Links become path-style. Ignored in local mode.",
        example="http://127.0.0.1:9000", invalid="minio:9000", ambient=True,
    ),
    Variable(
        "KEYED_STORAGE_CUSTOM_DOMAIN", "custom_domain", host_with_path, None, "s3",
        "CDN or custom host for links, e.g. ``cdn.example.org`` or ``https://cdn.example.org/files``.",
        example="https://cdn.example.org/files", invalid="cdn.example.org?x=1",
    ),
    Variable(
        "KEYED_STORAGE_PRIVATE", "private", flag, False, "s3",
        "``1``: links are presigned (SigV4) and expire. Default ``0``.",
        example="1", invalid="maybe",
    ),
    Variable(
        "KEYED_STORAGE_URL_EXPIRES", "url_expires", seconds, DEFAULT_URL_EXPIRES, "s3",
        f"Lifetime of presigned links in seconds, 1 to {MAX_URL_EXPIRES} (7 days, the SigV4 limit). "
        f"Default {DEFAULT_URL_EXPIRES}. Only with ``PRIVATE=1``.",
        example="600", invalid="soon",
    ),
    Variable(
        "KEYED_STORAGE_BASE_URL", "base_url", origin, None, "local",
        "Origin of local links, e.g. ``https://example.org``.",
        example="https://example.org", invalid="example.org",
    ),
    Variable(
        "KEYED_STORAGE_KEEP_METADATA", "keep_metadata", flag, False, "both",
        "``1``: store photos with their Exif/XMP (location included). Default ``0``: removed "
        "(see *Privacy*).",
        example="1", invalid="perhaps",
    ),
    Variable(
        "KEYED_STORAGE_CACHE_CONTROL", "cache_control", cache_control, None, "both",
        "The ``Cache-Control`` of files whose bytes never change under their link (issued names "
        f"and their variants). Default ``{IMMUTABLE}`` (private buckets: "
        "``private, max-age=<URL_EXPIRES>, immutable``); see *Links*.",
        example="public, max-age=86400", invalid="max-age=60; public",
    ),
    Variable(
        "KEYED_STORAGE_DIRECT_EXPIRES", "direct_expires", seconds, DEFAULT_DIRECT_EXPIRES, "both",
        f"How long a direct-upload ticket can be used, in seconds, 1 to {MAX_URL_EXPIRES}. Default "
        f"{DEFAULT_DIRECT_EXPIRES}. References live twice as long (see *Direct uploads*).",
        example="900", invalid="an hour",
    ),
    Variable(
        "KEYED_STORAGE_DIRECT_PART_THRESHOLD", "direct_part_threshold", part_bytes,
        DEFAULT_DIRECT_PART_THRESHOLD, "both",
        "Direct uploads of this many bytes or more go in parts (see *Resumable uploads*), 5 MiB to "
        f"5 GiB. Default {DEFAULT_DIRECT_PART_THRESHOLD} (64 MiB).",
        example=str(32 * 1024 * 1024), invalid="64MB",
    ),
    Variable(
        "KEYED_STORAGE_DIRECT_PART_SIZE", "direct_part_size", part_bytes, DEFAULT_DIRECT_PART_SIZE, "both",
        "Bytes in each part, 5 MiB to 5 GiB, grown for files that would need more than 10,000 "
        f"parts. Default {DEFAULT_DIRECT_PART_SIZE} (16 MiB).",
        example=str(MIN_PART_SIZE), invalid="1024",
    ),
    Variable(
        "KEYED_STORAGE_CONNECT_TIMEOUT", "connect_timeout", timeout, DEFAULT_CONNECT_TIMEOUT, "s3",
        f"Seconds to open a connection to S3. Default {DEFAULT_CONNECT_TIMEOUT:g}.",
        example="2.5", invalid="soon",
    ),
    Variable(
        "KEYED_STORAGE_READ_TIMEOUT", "read_timeout", timeout, DEFAULT_READ_TIMEOUT, "s3",
        "Seconds of silence allowed while waiting for an answer from S3 or its next bytes. "
        f"Default {DEFAULT_READ_TIMEOUT:g}.",
        example="5", invalid="0",
    ),
    Variable(
        "KEYED_STORAGE_TRANSFER_TIMEOUT", "transfer_timeout", timeout, DEFAULT_TRANSFER_TIMEOUT, "s3",
        "Connect and read timeout of long transfers: parts, completing a multipart upload, "
        f"server-side copies, PUTs over 256 KiB. Default {DEFAULT_TRANSFER_TIMEOUT:g}.",
        example="300", invalid="-1",
    ),
    Variable(
        "KEYED_STORAGE_MAX_ATTEMPTS", "max_attempts", attempts, DEFAULT_MAX_ATTEMPTS, "s3",
        f"Tries of one S3 request in all, retries included, 1 to {MAX_ATTEMPTS}. "
        f"Default {DEFAULT_MAX_ATTEMPTS}.",
        example="3", invalid="11",
    ),
)  # fmt: skip

BY_NAME = {variable.name: variable for variable in TABLE}


# The docs' table -------------------------------------------------------------------------------

_MODES = {"s3": "S3", "local": "local", "both": "both"}
_MEANING_WIDTH = 66


def rst_table() -> str:
    """The table of variables (the docs' configuration reference), as reStructuredText."""
    name_width = max(len(f"``{variable.name}``") for variable in TABLE)
    widths = (name_width, len("local"), _MEANING_WIDTH)
    rule = "  ".join("=" * width for width in widths)

    def row(*cells: str) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    lines = [rule, row("variable", "mode", "meaning"), rule]
    for variable in TABLE:
        meaning = variable.description
        if variable.secret:
            meaning += " Secret: never shown by ``doctor`` or any command."
        wrapped = textwrap.wrap(meaning, _MEANING_WIDTH, break_long_words=False, break_on_hyphens=False)
        lines.append(row(f"``{variable.name}``", _MODES[variable.mode], wrapped[0]))
        lines.extend(row("", "", more) for more in wrapped[1:])
    lines.append(rule)
    return "\n".join(lines) + "\n"
