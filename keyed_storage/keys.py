"""Keys: validation, object names (<key>/<token>/<filename>), key_template and the ready builders."""

from __future__ import annotations

import os
import re
import secrets
import string
import time
import unicodedata
from typing import Any

from django.core.exceptions import SuspiciousFileOperation
from django.utils.deconstruct import deconstructible
from django.utils.text import get_valid_filename

MAX_NAME_BYTES = 1024  # S3's limit on an object key, in UTF-8 bytes.
MAX_SEGMENT_BYTES = 255  # The usual file-system limit on one path component.
DEFAULT_FILENAME = "file"

# A token is 32 lowercase hex digits: the upload's start time in microseconds (14 digits),
# so tokens sort in upload order and "the newest object of a key" is well defined, then
# 72 random bits, so no token can be guessed. Its fixed shape lets a sweep of old objects
# recognise them and spare the objects of nested keys.
_TIME_HEX = 14
_RANDOM_BYTES = 9
TOKEN_HEX_CHARS = _TIME_HEX + 2 * _RANDOM_BYTES
_TOKEN = re.compile(rf"[0-9a-f]{{{TOKEN_HEX_CHARS}}}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def new_token() -> str:
    return f"{time.time_ns() // 1000:0{_TIME_HEX}x}{secrets.token_hex(_RANDOM_BYTES)}"


def is_token(segment: str) -> bool:
    return bool(_TOKEN.fullmatch(segment))


def _refuse(key: Any, why: str) -> SuspiciousFileOperation:
    return SuspiciousFileOperation(f"Refused key {key!r}: {why}.")


def validate_key(key: Any) -> str:
    """Return the key in NFC form, or raise SuspiciousFileOperation saying what is wrong with it.

    The same rules apply to keys given to upload(), keys built by key templates and names
    given to KeyedStorage.save(), so no entry can write outside its place.
    """
    if not isinstance(key, str):
        raise TypeError(f"A key must be a str such as 'users/42/avatar', not {type(key).__name__}.")
    key = unicodedata.normalize("NFC", key)
    if not key:
        raise _refuse(key, "it is empty")
    if _CONTROL.search(key):
        raise _refuse(key, "it contains a control character")
    if "\\" in key:
        raise _refuse(key, "it contains a backslash; separate segments with '/'")
    if key.startswith("/"):
        raise _refuse(key, "it is absolute; keys are relative, e.g. 'users/42/avatar'")
    if len(key.encode("utf-8")) > MAX_NAME_BYTES:
        raise _refuse(key, f"it is longer than {MAX_NAME_BYTES} UTF-8 bytes, S3's limit")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            why = "it has an empty segment" if not segment else f"it has a {segment!r} segment"
            raise _refuse(key, why)
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise _refuse(key, f"segment {segment[:20]!r}… is longer than {MAX_SEGMENT_BYTES} bytes")
    return key


def safe_filename(filename: Any) -> str:
    """The client's filename reduced to a safe base name that keeps its extension."""
    name = unicodedata.normalize("NFC", str(filename or ""))
    # Browsers and old clients send Windows paths ('C:\\fakepath\\x.png'); keep the last part.
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _CONTROL.sub("", name)
    try:
        name = get_valid_filename(name)
    except SuspiciousFileOperation:  # '', '.' or '..'
        name = ""
    name = name.lstrip(".")
    if not name:
        return DEFAULT_FILENAME
    stem, ext = os.path.splitext(name)
    budget = MAX_SEGMENT_BYTES - len(ext.encode("utf-8"))
    while len(stem.encode("utf-8")) > budget:
        stem = stem[:-1]
    return (stem or DEFAULT_FILENAME) + ext


def object_name(key: str, filename: Any) -> str:
    """The default object name for a new upload: <key>/<token>/<safe filename>."""
    name = f"{validate_key(key)}/{new_token()}/{safe_filename(filename)}"
    return validate_key(name)


def has_token(name: str) -> bool:
    """True for names produced by object_name(): they are unique, so never need an exists() check."""
    parts = name.split("/")
    return len(parts) >= 3 and is_token(parts[-2])


class KeyNeedsValue(ValueError):
    """A key template field is empty (None or ''), so no meaningful key can be built."""


@deconstructible(path="keyed_storage.keys.KeyTemplate")
class KeyTemplate:
    """An upload_to callable that names files <key>/<token>/<filename>, the key filled from the instance.

    A placeholder is an attribute path of the instance ({id}, {event_id}, {event.slug}). The
    primary key of a new instance is filled in transparently: keyed_storage saves the row first,
    then the file (see keyed_storage.signals). Any other empty value raises KeyNeedsValue.
    """

    def __init__(self, pattern: str):
        if not isinstance(pattern, str):
            raise TypeError(f"key_template() takes a str pattern, not {type(pattern).__name__}.")
        self.pattern = pattern
        self.fields: tuple[str, ...] = ()
        fields = []
        for _, field_name, spec, conversion in string.Formatter().parse(pattern):
            if field_name is None:
                continue
            if (
                not field_name
                or spec
                or conversion
                or not all(part.isidentifier() for part in field_name.split("."))
            ):
                raise ValueError(
                    f"key_template({pattern!r}): placeholders are attribute paths such as "
                    f"{{id}} or {{event.id}}, without format specs; got {{{field_name}}}."
                )
            fields.append(field_name)
        self.fields = tuple(fields)
        # Check the literal parts now, with a stand-in value, so a bad pattern fails at import.
        validate_key(_fill(pattern, dict.fromkeys(self.fields, "0")))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeyTemplate) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"key_template({self.pattern!r})"

    def needs_pk(self, model: type) -> bool:
        pk_names = {"pk", model._meta.pk.attname, model._meta.pk.name}
        return any(field in pk_names for field in self.fields)

    def key(self, instance: Any) -> str:
        values = {}
        for field in self.fields:
            value: Any = instance
            for part in field.split("."):
                value = getattr(value, part, None) if value is not None else None
            if value is None or value == "":
                model = type(instance).__name__
                meta = getattr(instance, "_meta", None)
                if meta is not None and field in ("pk", meta.pk.attname, meta.pk.name):
                    hint = (
                        "keyed_storage fills in the primary key of a new instance by saving the row "
                        "first; add 'keyed_storage' to INSTALLED_APPS so it can."
                    )
                else:
                    hint = f"Set {model}.{field} before saving the file."
                raise KeyNeedsValue(
                    f"Key template {self.pattern!r} needs {model}.{field}, which is {value!r}. {hint}"
                )
            text = str(value)
            if "/" in text:
                raise SuspiciousFileOperation(
                    f"Key template {self.pattern!r}: {type(instance).__name__}.{field}={text!r} "
                    "contains '/', but a placeholder fills exactly one key segment."
                )
            values[field] = text
        return validate_key(_fill(self.pattern, values))

    def __call__(self, instance: Any, filename: str) -> str:
        return object_name(self.key(instance), filename)


def _fill(pattern: str, values: dict[str, str]) -> str:
    out = []
    for literal, field_name, _, _ in string.Formatter().parse(pattern):
        out.append(literal)
        if field_name is not None:
            out.append(values[field_name])
    return "".join(out)


def key_template(pattern: str) -> KeyTemplate:
    """An upload_to for FileField from a pattern such as "events/{event_id}/sessions/{id}/audio"."""
    return KeyTemplate(pattern)


user_avatar_key = key_template("users/{id}/avatar")
event_logo_key = key_template("events/{id}/logo")
event_background_key = key_template("events/{id}/background")
session_audio_key = key_template("events/{event_id}/sessions/{id}/audio")
session_video_key = key_template("events/{event_id}/sessions/{id}/video")
session_slides_key = key_template("events/{event_id}/sessions/{id}/slides")
speaker_photo_key = key_template("events/{event_id}/speakers/{id}/photo")
sponsor_logo_key = key_template("events/{event_id}/sponsors/{id}/logo")
