"""Keys: validation, object names (<key>/<token>/<filename>) and key_template."""

from __future__ import annotations

import functools
import os
import re
import secrets
import string
import threading
import time
import unicodedata
import warnings
from typing import TYPE_CHECKING

from django.core.exceptions import SuspiciousFileOperation
from django.utils.crypto import get_random_string
from django.utils.deconstruct import deconstructible
from django.utils.text import get_valid_filename

if TYPE_CHECKING:
    from django.db.models import Model

MAX_NAME_BYTES = 1024  # S3's limit on an object key, in UTF-8 bytes.
MAX_SEGMENT_BYTES = 255  # The usual file-system limit on one path component.
# Where local mode keeps the parts of multipart direct uploads, under MEDIA_ROOT: no key may
# name it, so no upload can read, replace or delete another upload's parts.
PARTS_DIRECTORY = ".keyed-storage-parts"
DEFAULT_FILENAME = "file"

# A token is 32 lowercase hex digits: the upload's start time in microseconds (14 digits),
# so tokens sort in upload order and "the newest object of a key" is well defined, then
# 72 random bits, so no token can be guessed. Its fixed shape lets a sweep of old objects
# recognise them and spare the objects of nested keys.
TOKEN_TIME_HEX = 14
_RANDOM_BYTES = 9
TOKEN_HEX_CHARS = TOKEN_TIME_HEX + 2 * _RANDOM_BYTES
_TOKEN = re.compile(rf"[0-9a-f]{{{TOKEN_HEX_CHARS}}}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# What an ASCII key may not contain (see _bad_shape for the refused shapes).
_ASCII_REFUSED = re.compile(r"[\x00-\x1f\x7f\\]")
# Unicode categories refused in keys beside control characters (Cc): format characters (Cf:
# bidi overrides such as U+202E, zero-width joiners, the BOM), surrogates (Cs, which cannot
# be encoded), and line, paragraph and space separators other than the ASCII space (Zl, Zp,
# Zs: U+2028, U+00A0...). All of them are invisible or change how a key reads.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Zs"})
_MAYBE_INVISIBLE = re.compile(r"[^\x20-\x7e]")
# An extension longer than this is not an extension but part of the name ('a.' + 200 'é').
MAX_EXTENSION_CHARS = 16
# Names made by object_name() in this process and not yet saved: their token makes them
# unique, so saving one needs no exists() round trip. Kept by provenance, not by shape: a
# name that merely looks tokened (another app's 'blobs/<md5>/f.txt') is not in here.
_ISSUED_LIMIT = 4096
_issued: dict[str, None] = {}
_issued_lock = threading.Lock()


def new_token() -> str:
    return f"{time.time_ns() // 1000:0{TOKEN_TIME_HEX}x}{secrets.token_hex(_RANDOM_BYTES)}"


def is_token(segment: str) -> bool:
    return bool(_TOKEN.fullmatch(segment))


def _refuse(key: object, why: str) -> SuspiciousFileOperation:
    return SuspiciousFileOperation(f"Refused key {key!r}: {why}.")


def _invisible(text: str) -> str | None:
    """The first character of `text` in a refused Unicode category, if any."""
    # Only control characters and those beyond ASCII can be in one: the regular expression
    # picks them out in C, so a long name with one 'é' costs one category lookup, not one
    # per character.
    char: str
    for char in _MAYBE_INVISIBLE.findall(text):
        if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
            return char
    return None


def validate_key(key: object) -> str:
    """Return the key in NFC form, or raise SuspiciousFileOperation saying what is wrong with it.

    The same rules apply to keys given to upload(), keys built by key templates and every
    name given to a KeyedStorage method (save, open, url, exists, size, delete...), so no
    entry can reach outside its place and NFC and NFD spellings name the same object.
    """
    if not isinstance(key, str):
        raise TypeError(f"A key must be a str such as 'users/42/avatar', not {type(key).__name__}.")
    return _validated(key)


@functools.lru_cache(maxsize=16384)
def _validated(key: str) -> str:
    # Cached: url() validates every name it is given, and a page asks for the same names
    # again and again; a hit costs a dictionary lookup. Only valid keys are cached.
    if key.isascii():
        if (
            key
            and len(key) <= MAX_NAME_BYTES
            and not _ASCII_REFUSED.search(key)
            and not _bad_shape(key)
            and (len(key) <= MAX_SEGMENT_BYTES or _segments_fit(key))
        ):
            return key
        _diagnose(key)
    key = unicodedata.normalize("NFC", key)
    _diagnose(key)
    return key


def _bad_shape(key: str) -> bool:
    # Plain substring tests: several times faster than one regular expression with anchors.
    return (
        key[0] == "/"
        or key[-1] == "/"
        or "//" in key
        or "/./" in key
        or "/../" in key
        or key.startswith(("./", "../"))
        or key.endswith(("/.", "/.."))
        or key in (".", "..")
        or key.split("/", 1)[0] == PARTS_DIRECTORY
    )


def _segments_fit(key: str) -> bool:
    return all(len(segment.encode("utf-8")) <= MAX_SEGMENT_BYTES for segment in key.split("/"))


def _diagnose(key: str) -> None:
    """Raise SuspiciousFileOperation naming the first rule `key` breaks; return if it breaks none."""
    if not key:
        raise _refuse(key, "it is empty")
    if _CONTROL.search(key):
        raise _refuse(key, "it contains a control character")
    char = _invisible(key)
    if char is not None:
        name = unicodedata.name(char, "unnamed")
        raise _refuse(
            key,
            f"it contains the invisible or direction-changing character U+{ord(char):04X} ({name})",
        )
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
    if key.split("/", 1)[0] == PARTS_DIRECTORY:
        raise _refuse(key, f"{PARTS_DIRECTORY!r} holds the parts of uploads in progress, not keys")


def truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` whose UTF-8 encoding fits in `max_bytes`: one pass, no loop."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[: max(max_bytes, 0)].decode("utf-8", "ignore")


def split_extension(filename: str) -> tuple[str, str]:
    """(stem, extension): '.png', or a double extension such as '.tar.gz' as Django's
    alternative names keep it. Anything longer than MAX_EXTENSION_CHARS is not an extension."""
    stem, extension = os.path.splitext(filename)
    if not stem or len(extension) > MAX_EXTENSION_CHARS:
        return filename, ""
    inner_stem, inner = os.path.splitext(stem)
    if inner_stem and inner[1:].isalpha() and len(inner + extension) <= MAX_EXTENSION_CHARS:
        return inner_stem, inner + extension
    return stem, extension


def shorten_filename(filename: str, max_chars: int | None = None, max_bytes: int = MAX_SEGMENT_BYTES) -> str:
    """`filename` cut to at most `max_chars` characters and `max_bytes` UTF-8 bytes, keeping
    its extension when there is room for it and a character of stem; '' when nothing fits."""
    limit_chars = len(filename) if max_chars is None else max(max_chars, 0)
    if len(filename) <= limit_chars and len(filename.encode("utf-8")) <= max_bytes:
        return filename
    stem, extension = split_extension(filename)
    if extension and len(extension) < limit_chars and len(extension.encode("utf-8")) < max_bytes:
        room_chars = limit_chars - len(extension)
        room_bytes = max_bytes - len(extension.encode("utf-8"))
        return truncate_utf8(stem[:room_chars], room_bytes) + extension
    return truncate_utf8(filename[:limit_chars], max_bytes)


def safe_filename(filename: str | None) -> str:
    """The client's filename reduced to a safe base name that keeps its extension.

    Every step is a single pass over the input: a hostile name costs time in proportion
    to its length, and a name of any length comes out at most 255 bytes.
    """
    name = unicodedata.normalize("NFC", str(filename or ""))
    # Browsers and old clients send Windows paths ('C:\\fakepath\\x.png'); keep the last part.
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    try:
        name = get_valid_filename(name)  # keeps letters, digits, '-', '_' and '.'
    except SuspiciousFileOperation:  # '', '.' or '..'
        name = ""
    name = shorten_filename(name.lstrip("."), max_bytes=MAX_SEGMENT_BYTES).strip(".")
    # Cutting can leave a form that NFC writes differently; normalising never lengthens it here.
    name = unicodedata.normalize("NFC", name)
    return name or DEFAULT_FILENAME


def fresh_name(key: str, filename: str | None) -> str:
    """A new <key>/<token>/<safe filename>, not remembered: for an object this process
    will not save() itself (a direct upload, whose signed reference is its provenance)."""
    return validate_key(f"{validate_key(key)}/{new_token()}/{safe_filename(filename)}")


def object_name(key: str, filename: str | None) -> str:
    """The default object name for a new upload: <key>/<token>/<safe filename>.

    The name is remembered as issued by keyed_storage, so KeyedStorage.save() knows it is
    unique without asking the storage (see claim_issued).
    """
    name = fresh_name(key, filename)
    with _issued_lock:
        _issued[name] = None
        if len(_issued) > _ISSUED_LIMIT:
            del _issued[next(iter(_issued))]  # the oldest: a name issued and never saved
    return name


def claim_issued(name: str) -> bool:
    """True once for a name object_name() issued in this process (and forget it)."""
    with _issued_lock:
        return _issued.pop(name, False) is None


def split_tokened(name: str) -> tuple[str, str, str] | None:
    """(key, token, filename) of a name shaped <key>/<token>/<filename>, else None."""
    parts = name.rsplit("/", 2)
    if len(parts) == 3 and is_token(parts[1]):
        return parts[0], parts[1], parts[2]
    return None


def _too_long(name: str, max_length: int, why: str) -> SuspiciousFileOperation:
    # Django's own sentence first: code and people searching for it find it.
    return SuspiciousFileOperation(
        f'Storage can not find an available filename for "{name}". Please make sure that the '
        f'corresponding file field allows sufficient "max_length". {why} (max_length={max_length}; '
        "keyed_storage's names are <key>/<token>/<filename>, so use max_length=255)."
    )


def fit_name(name: str, max_length: int | None) -> str:
    """`name` with its filename shortened to fit `max_length` characters; the directory part
    (key and token) is never cut. Raises SuspiciousFileOperation if it alone does not fit."""
    if not max_length or len(name) <= max_length:
        return name
    directory, _, filename = name.rpartition("/")
    room = max_length - (len(directory) + 1 if directory else 0)
    shorter = shorten_filename(filename, room) if room > 0 else ""
    if not shorter:
        raise _too_long(name, max_length, f"The key and token {directory!r} alone take {len(directory) + 1}.")
    return f"{directory}/{shorter}" if directory else shorter


def fit_exact_name(name: str, max_length: int | None) -> str:
    """An exact name (overwrite=True) as it is: shortening it would write another key."""
    if max_length and len(name) > max_length:
        raise _too_long(
            name, max_length, f"The exact name has {len(name)} characters and is never shortened."
        )
    return name


def alternative_name(name: str, max_length: int | None) -> str:
    """Another name in the same directory: '<stem>_<7 random characters><extension>', as Django's
    get_alternative_name() makes, the stem cut first so the random part always survives."""
    directory, _, filename = name.rpartition("/")
    stem, extension = split_extension(filename)
    suffix = f"_{get_random_string(7)}"
    room_bytes = MAX_SEGMENT_BYTES - len((suffix + extension).encode("utf-8"))
    if max_length:
        room = max_length - (len(directory) + 1 if directory else 0) - len(suffix + extension)
        if room < 1:
            raise _too_long(name, max_length, "No alternative name fits.")
        stem = stem[:room]
    filename = truncate_utf8(stem, room_bytes) + suffix + extension
    return validate_key(f"{directory}/{filename}" if directory else filename)


def reissued_name(name: str, max_length: int | None) -> str:
    """An issued name <key>/<token>/<filename> with a new token, for the (astronomically rare)
    case that its token was taken."""
    key, _, filename = split_tokened(name) or (name.rpartition("/")[0], "", name.rpartition("/")[2])
    return fit_name(validate_key(f"{key}/{new_token()}/{filename}"), max_length)


def has_token(name: str) -> bool:
    """True for names shaped like object_name()'s. Shape only: see claim_issued for provenance."""
    return split_tokened(name) is not None


class FinishedName(str):
    """A name keyed_storage.direct.finish_upload() returned: a direct upload's own new object.

    The save that first sets it on a model field owns it, as it owns a file it stores itself:
    if that save rolls back, the object is removed (keyed_storage.lifecycle.replacement). Anywhere else
    it is the str it equals.
    """

    __slots__ = ()


class KeyNeedsValue(ValueError):
    """A key template field is empty (None or ''), so no meaningful key can be built."""


def _no_pk_yet_hint() -> str:
    from django.apps import apps

    if not apps.is_installed("keyed_storage"):
        return (
            "keyed_storage fills in the primary key of a new instance by saving the row first; add "
            "'keyed_storage' to INSTALLED_APPS so it can."
        )
    # Installed, yet asked for a name before the row exists: FieldFile.save() on a new row
    # stores the file first, by Django's design, so no row id is there to hold back for.
    return (
        "The row has no id yet. Assign the file and save the row (row.field = file; row.save()): "
        "keyed_storage then stores it right after the INSERT. Or save the row first, then "
        "row.field.save(name, content)."
    )


@deconstructible(path="keyed_storage.keys.KeyTemplate")
class KeyTemplate:
    """An upload_to callable that names files <key>/<token>/<filename>, the key filled from the instance.

    A placeholder is an attribute path of the instance ({id}, {event_id}, {event.slug}). The
    primary key of a new instance is filled in transparently: keyed_storage saves the row first,
    then the file (see keyed_storage.lifecycle.primary_keys). Any other empty value raises KeyNeedsValue.
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

    def needs_pk(self, model: type[Model]) -> bool:
        pk_names = {"pk", model._meta.pk.attname, model._meta.pk.name}
        return any(field in pk_names for field in self.fields)

    def key(self, instance: object) -> str:
        values = {}
        for field in self.fields:
            value: object = instance
            for part in field.split("."):
                value = getattr(value, part, None) if value is not None else None
            if value is None or value == "":
                model = type(instance).__name__
                meta = getattr(instance, "_meta", None)
                if meta is not None and field in ("pk", meta.pk.attname, meta.pk.name):
                    hint = _no_pk_yet_hint()
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

    def __call__(self, instance: object, filename: str) -> str:
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


# The builders for an event site that keyed_storage once shipped here. They named the demo's
# files, not anything generic, and now live with it (testproject/events/keys.py); a project
# that imported them keeps working, warned, until it defines its own. Each is given back as
# the KeyTemplate it always was: it works as upload_to unchanged, and it deconstructs as every
# migration already records it (keyed_storage.keys.KeyTemplate('events/{id}/logo')), so no
# migration names the old builder and replacing it with the project's own key_template() of
# the same pattern changes no migration.
_MOVED_BUILDERS = {
    "user_avatar_key": "users/{id}/avatar",
    "event_logo_key": "events/{id}/logo",
    "event_background_key": "events/{id}/background",
    "session_audio_key": "events/{event_id}/sessions/{id}/audio",
    "session_video_key": "events/{event_id}/sessions/{id}/video",
    "session_slides_key": "events/{event_id}/sessions/{id}/slides",
    "speaker_photo_key": "events/{event_id}/speakers/{id}/photo",
    "sponsor_logo_key": "events/{event_id}/sponsors/{id}/logo",
}

if TYPE_CHECKING:
    # Declared for type checkers only: at run time each comes from __getattr__ with its warning.
    user_avatar_key: KeyTemplate
    event_logo_key: KeyTemplate
    event_background_key: KeyTemplate
    session_audio_key: KeyTemplate
    session_video_key: KeyTemplate
    session_slides_key: KeyTemplate
    speaker_photo_key: KeyTemplate
    sponsor_logo_key: KeyTemplate
else:

    def __getattr__(name: str) -> KeyTemplate:
        """The moved builders (PEP 562): each access warns and returns the builder it was."""
        pattern = _MOVED_BUILDERS.get(name)
        if pattern is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        warnings.warn(
            f"keyed_storage.keys.{name} is deprecated and will be removed: it was the demo site's "
            f"builder. Define it in your project instead: {name} = key_template({pattern!r}) "
            "(from keyed_storage import key_template). Migrations record the same "
            f"keyed_storage.keys.KeyTemplate({pattern!r}) either way, so none changes.",
            DeprecationWarning,
            stacklevel=2,
        )
        return KeyTemplate(pattern)
