"""Direct uploads in forms: a widget that uploads on selection, a form field that finishes the upload.

The widget renders the usual file input (what a browser without JavaScript uses) and, for a
row that is already saved, a field token: the model field and the key, signed for the user
the page is shown to. keyed_storage.direct.views exchanges that token for a ticket, direct.js
uploads the file with it and puts the ticket's reference in a hidden input, and
DirectFileField.clean() finishes the upload and gives the model the stored name, which a
FileField saves as it is (nothing is stored again), so replacement, rollback and deletion
treat it as any other new name.

The key is the row's as it is when the form is shown: a new row has no id yet (nor, often,
the parent its key names), so an add form uploads through Django as before.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass
from typing import Any

from django import forms
from django.apps import apps
from django.core.exceptions import (
    FieldDoesNotExist,
    PermissionDenied,
    SuspiciousFileOperation,
    ValidationError,
)
from django.db.models import FileField, ImageField, Model
from django.db.models.fields.files import ImageFieldFile
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

from ..fields import KeyedImageFieldFile, KeyedImageFormField
from ..keys import FinishedName, KeyNeedsValue, KeyTemplate, fit_name, fresh_name, validate_key
from ..lifecycle.replacement import remove_unclaimed
from ..signed import FieldToken, Invalid
from ..storage import KeyedStorage
from ..validators import ContentTypeValidator, FileSizeValidator
from ..widgets import FilePreviewWidget
from .tickets import finish_upload, image_size

logger = logging.getLogger("keyed_storage")

# A form may stay open over a working day before its file is picked.
TOKEN_MAX_AGE = 12 * 60 * 60


@dataclass(frozen=True, slots=True)
class DirectUpload:
    """A form's value when the browser uploaded the file itself: the reference to finish,
    and the field token, kept so a form shown again with errors can upload once more."""

    reference: str
    token: str
    # True when the form is shown again after this upload was refused: its reference is
    # dropped (it can never be finished now) and the widget says the file must be picked again.
    refused: bool = False


@dataclass(frozen=True, slots=True)
class FieldGrant:
    """What a valid field token names: a model field and the key its uploads go under."""

    field: FileField
    key: str

    @property
    def label(self) -> str:
        return field_label(self.field)


def field_label(field: FileField) -> str:
    """'app_label.model.field', the name a token and a binding use for a model field."""
    return f"{field.model._meta.label_lower}.{field.name}"


def binding(field: FileField, user_id: str) -> str:
    """The bound_to of this field's tickets for this user: a reference finishes only there."""
    return f"form:{field_label(field)}:{user_id}"


def upload_limits(field: FileField) -> tuple[tuple[str, ...] | None, int | None]:
    """(accept, max_size) from the field's ContentTypeValidator and FileSizeValidator.

    A directly uploaded file is stored before the form is validated, so the model's own
    validators skip it (as they skip any stored file): these limits are the ones the ticket
    and finish_upload() enforce instead.
    """
    accept: tuple[str, ...] | None = None
    max_size: int | None = None
    for validator in field.validators:
        if isinstance(validator, ContentTypeValidator):
            accept = validator.patterns
        elif isinstance(validator, FileSizeValidator):
            max_size = validator.max_size if max_size is None else min(max_size, validator.max_size)
    if accept is None and isinstance(field, ImageField):
        accept = ("image/*",)  # what Pillow cannot read is refused after, by image_size()
    return accept, max_size


def unfit_for_direct_uploads(field: FileField) -> str | None:
    """Why `field` cannot take direct uploads, or None when it can."""
    if not isinstance(field.storage, KeyedStorage):
        return "it is not on KeyedStorage"
    if not isinstance(field.upload_to, KeyTemplate):
        return "its upload_to is not a key template (keyed_storage.key_template), so no key is known"
    if sum(isinstance(v, ContentTypeValidator) for v in field.validators) > 1:
        return "it has two ContentTypeValidators, and a ticket checks one"
    return None


def direct_key(field: FileField, instance: Model | None) -> str | None:
    """The key a direct upload to `field` of `instance` goes under, or None when direct
    uploads cannot be offered: a row not saved yet, or a field unfit for them."""
    template = field.upload_to
    if instance is None or instance.pk is None or unfit_for_direct_uploads(field):
        return None
    assert isinstance(template, KeyTemplate)  # unfit_for_direct_uploads() said so
    try:
        return template.key(instance)
    except (KeyNeedsValue, SuspiciousFileOperation):
        return None


def field_token(field: FileField, key: str, user_id: str) -> str:
    """The signed token a page carries for direct uploads to `field` under `key` by one user."""
    return FieldToken(field_label(field), key).sign(binding=user_id)


def open_field_token(token: str, user_id: str) -> FieldGrant:
    """The field and key `token` grants to this user; PermissionDenied for any other token."""
    try:
        payload = FieldToken.open(token, max_age=TOKEN_MAX_AGE, binding=user_id)
        app_label, model_name, field_name = payload.field.split(".")
        field = apps.get_model(app_label, model_name)._meta.get_field(field_name)
        key = validate_key(payload.key)
    except (
        Invalid,
        KeyError,
        TypeError,
        ValueError,
        LookupError,
        FieldDoesNotExist,
        SuspiciousFileOperation,
    ) as error:
        raise PermissionDenied("This upload token is not valid for you.") from error
    if not isinstance(field, FileField):
        raise PermissionDenied("This upload token is not valid for you.")
    return FieldGrant(field, key)


def fitting_filename(field: FileField, key: str, filename: str) -> str:
    """The client's filename shortened so <key>/<token>/<filename> fits the field's column."""
    return posixpath.basename(fit_name(fresh_name(key, filename), field.max_length))


def user_id(user: Any) -> str | None:
    """The id direct uploads are bound to, or None for an anonymous user (no direct uploads)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(user.pk)


class DirectUploadWidget(FilePreviewWidget):
    """The preview widget that, with JavaScript, uploads the file as soon as it is picked.

    Beside the file input it renders a hidden input for the reference, a progress bar and a
    cancel button, driven by keyed_storage/direct.js. It offers direct uploads only when its
    form field has a user (DirectFileField binds it) and the row is saved; otherwise, and in
    a browser without JavaScript, it is the preview widget and the file goes through Django.
    """

    template_name = "keyed_storage/widgets/direct_upload.html"
    user_id: str | None = None

    class Media:
        js = ["keyed_storage/direct.js"]

    @staticmethod
    def reference_name(name: str) -> str:
        return f"{name}-reference"

    @staticmethod
    def token_name(name: str) -> str:
        return f"{name}-token"

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        upload = value if isinstance(value, DirectUpload) else None
        context = super().get_context(name, None if upload else value, attrs)
        token = upload.token if upload else self._token(value)
        ticket_url = _ticket_url()
        if token and ticket_url:
            context["widget"]["direct"] = {
                "ticket_url": ticket_url,
                "token": token,
                "token_name": self.token_name(name),
                "reference_name": self.reference_name(name),
                "reference": upload.reference if upload else "",
                "refused": upload.refused if upload else False,
            }
        return context

    def _token(self, value: Any) -> str | None:
        field, instance = getattr(value, "field", None), getattr(value, "instance", None)
        if self.user_id is None or not isinstance(field, FileField):
            return None
        key = direct_key(field, instance)
        return field_token(field, key, self.user_id) if key else None

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        reference = data.get(self.reference_name(name))
        if reference and self.user_id is not None:
            return DirectUpload(str(reference), str(data.get(self.token_name(name), "")))
        return super().value_from_datadict(data, files, name)

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return super().value_omitted_from_data(data, files, name) and self.reference_name(name) not in data


def _ticket_url() -> str | None:
    try:
        return reverse("keyed_storage:direct-ticket")
    except NoReverseMatch:  # keyed_storage.urls not included: the plain upload still works
        return None


class DirectFileField(forms.FileField):
    """A FileField form field that also takes a direct upload's reference, for one user.

    clean() finishes the upload (keyed_storage.direct.finish_upload, bound to this field and
    user, for the key of the form's row) and returns the stored name, which the model field
    saves as it is; a refused upload is a form error. A file sent the usual way is handled
    as forms.FileField handles it.
    """

    widget = DirectUploadWidget

    def __init__(self, *, user: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bind(user)
        self.refused_reference: str | None = None

    def bind(self, user: Any) -> None:
        """Offer direct uploads to `user` (None or anonymous: never)."""
        self.user_id = user_id(user)
        if isinstance(self.widget, DirectUploadWidget):
            self.widget.user_id = self.user_id

    def bound_data(self, data: Any, initial: Any) -> Any:
        # A form shown again (another field had an error) keeps the finished upload's
        # reference, so saving it then needs no second upload; a file sent through Django
        # cannot be kept that way and is picked again, as with forms.FileField. A reference
        # clean() refused is dropped: it would be refused again, whatever else is fixed.
        if not isinstance(data, DirectUpload):
            return super().bound_data(data, initial)
        if data.reference == self.refused_reference:
            return DirectUpload("", data.token, refused=True)
        return data

    def clean(self, data: Any, initial: Any = None) -> Any:
        if not isinstance(data, DirectUpload):
            return super().clean(data, initial)
        try:
            return self._finish(data, initial)
        except ValidationError:
            self.refused_reference = data.reference
            raise

    def _finish(self, data: DirectUpload, initial: Any) -> Any:
        # The initial value is the row's FieldFile: its field and instance give the key.
        field, instance = getattr(initial, "field", None), getattr(initial, "instance", None)
        key = direct_key(field, instance) if isinstance(field, FileField) else None
        if key is None or field is None or instance is None or self.user_id is None:
            raise ValidationError(
                _("This upload cannot be used here. Please choose the file again."), code="direct_unavailable"
            )
        try:
            name = finish_upload(data.reference, key=key, bound_to=binding(field, self.user_id))
            if isinstance(field, ImageField):
                return _finished_image(field, instance, name)
        except OSError as failure:  # a StorageError: the storage failed, not the file
            # finish_upload() removed the upload and _finished_image() its own file: the
            # user's edits are shown again, with this, and the file is picked again.
            logger.exception("keyed_storage: a direct upload to %s could not be stored", field_label(field))
            raise ValidationError(
                _("The file could not be stored just now. Please upload it again."),
                code="direct_storage",
            ) from failure
        return name


class DirectImageField(DirectFileField, KeyedImageFormField):
    """DirectFileField for an image field: a file sent the usual way is checked as
    KeyedImageFormField checks it (a picture Pillow reads, within the pixel limit); a
    direct upload is checked from its first bytes (keyed_storage.direct.image_size)."""


def _finished_image(field: ImageField, instance: Model, name: str) -> ImageFieldFile:
    """The row's new file for a finished upload to an image field, with its size told from
    its first bytes, so Django fills width_field and height_field without reading it; a
    KeyedImageField's variants are rendered from one full read. A file that is not a picture
    the field takes, or whose variants cannot be stored, is refused, and removed with its
    variants if it is this request's own."""
    try:
        size = image_size(name, max_pixels=getattr(field, "max_pixels", None))
        file = field.attr_class(instance, field, name)
        file._dimensions_cache = size  # type: ignore[attr-defined]  # what ImageFieldFile.width reads
        if isinstance(file, KeyedImageFieldFile) and file.field.variants:
            file.store_variants()
    except BaseException:
        # Only this request's own file (the FinishedName its finish returned), and only while
        # no row names it: a form sent again finishes the same upload again.
        if isinstance(name, FinishedName):
            remove_unclaimed(field, name)
        raise
    return file
