"""The signed values keyed_storage hands out, as typed objects: one frozen dataclass per scheme,
and the one codec (Signed) that knows how they are written (Django's signing, a salt per
scheme, compression, the single-letter keys) so nothing else reads or writes a raw payload.

The wire format is the one the app has always used: references and tickets already handed
out still open. How long each may live is its issuer's policy (the configuration's
direct-upload lifetime, say): callers give it to open().
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from django.core import signing


class Invalid(ValueError):
    """Not a value of this scheme: altered, made with another salt or binding, or malformed."""


class Expired(Invalid):
    """A genuine value, older than the max_age it was opened with."""


def _key(short: str, load: Callable[[Any], Any] | None = None, *, omit_none: bool = False) -> Any:
    """A field written under the key `short`; `load` checks and converts what is read (any
    error makes the value Invalid); omit_none: left out of the payload when None (its default)."""
    metadata = {"key": short, "load": load, "omit_none": omit_none}
    if omit_none:
        return dataclasses.field(default=None, metadata=metadata)
    return dataclasses.field(metadata=metadata)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a string, not {value!r}")
    return value


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"a whole number, not {value!r}")
    return value


def _optional(load: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else load(value)


def _patterns(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(_text(pattern) for pattern in value)


class Signed:
    """The codec every scheme below inherits: sign() writes, open() reads and checks."""

    SALT: ClassVar[str]
    COMPRESS: ClassVar[bool] = True

    def sign(self, *, binding: str | None = None) -> str:
        """The signed, URL-safe text of this value; `binding` (a context such as a form and a
        user) is mixed into the salt, never written: only the same binding opens it."""
        payload: dict[str, Any] = {}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]  # every scheme is a dataclass
            value = getattr(self, field.name)
            if value is None and field.metadata["omit_none"]:
                continue
            payload[field.metadata["key"]] = list(value) if isinstance(value, tuple) else value
        return signing.dumps(payload, salt=self._salt(binding), compress=self.COMPRESS)

    @classmethod
    def open(cls, token: str, *, max_age: int, binding: str | None = None) -> Self:
        """The value `token` carries; Expired if older than `max_age` seconds, Invalid if it is
        not one of this scheme's (or not made with the same binding)."""
        if not isinstance(token, str):
            raise Invalid(f"A {cls.__name__} is a string, not {type(token).__name__}.")
        try:
            payload = signing.loads(token, salt=cls._salt(binding), max_age=max_age)
        except signing.SignatureExpired as error:
            raise Expired(str(error)) from error
        except signing.BadSignature as error:
            raise Invalid(str(error)) from error
        if not isinstance(payload, dict):
            raise Invalid(f"A {cls.__name__} holds a mapping, not {type(payload).__name__}.")
        values = {}
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            short, load = field.metadata["key"], field.metadata["load"]
            try:
                value = payload[short] if not field.metadata["omit_none"] else payload.get(short)
                values[field.name] = load(value) if load is not None else value
            except (KeyError, TypeError, ValueError) as error:
                raise Invalid(f"{cls.__name__}: bad or missing {short!r} ({error}).") from error
        return cls(**values)

    @classmethod
    def _salt(cls, binding: str | None) -> str:
        return cls.SALT if binding is None else f"{cls.SALT}:{binding}"


# The salts: each scheme its own, so no other signed value of the site (a session, a
# password-reset token, another scheme's value) is ever one of these.
REFERENCE_SALT = "keyed_storage.direct.reference"


@dataclass(frozen=True)
class UploadReference(Signed):
    """What start_upload() grants and finish_upload() checks (keyed_storage.direct); bound to
    a context by its binding (start_upload's bound_to)."""

    SALT: ClassVar[str] = REFERENCE_SALT

    upload: str = _key("n", _text)  # the name the upload is stored under until finished
    key: str = _key("k", _text)
    size: int = _key("s", _count)
    max_size: int | None = _key("m", _optional(_count))
    accept: tuple[str, ...] | None = _key("a", _patterns)
    claim: str | None = _key("c", _optional(_text))  # the type the client announced
    # A multipart upload's id and part size; None for an upload sent in one POST.
    upload_id: str | None = _key("u", _optional(_text), omit_none=True)
    part_size: int | None = _key("p", _optional(_count), omit_none=True)


@dataclass(frozen=True)
class DiskTicket(Signed):
    """What a local direct-upload ticket allows: one new file, `name`, of exactly `size` bytes
    (keyed_storage.backends.local, received by keyed_storage.endpoint)."""

    SALT: ClassVar[str] = "keyed_storage.backends.local.direct-ticket"

    name: str = _key("n", str)
    size: int = _key("s", int)


@dataclass(frozen=True)
class DiskPartTicket(Signed):
    """What a local part URL allows: part `number` of upload `upload_id` of `name`, `size` bytes."""

    SALT: ClassVar[str] = "keyed_storage.backends.local.direct-part"

    name: str = _key("n", str)
    upload_id: str = _key("u", str)
    number: int = _key("i", int)
    size: int = _key("s", int)


@dataclass(frozen=True)
class FieldToken(Signed):
    """What a page's direct-upload widget may ask for (keyed_storage.direct_forms): uploads to
    the model field labelled `field` ('app.model.field') under `key`. Bound to the user's id,
    so one user's token is never another's."""

    SALT: ClassVar[str] = "keyed_storage.direct.field"
    COMPRESS: ClassVar[bool] = False

    field: str = _key("f", _text)
    key: str = _key("k", _text)
