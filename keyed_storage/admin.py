"""Admin previews for file fields: FilePreviewMixin for change forms and inlines, preview() for lists."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, Literal

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AdminFileWidget
from django.core import checks
from django.core.exceptions import FieldDoesNotExist
from django.db import models

from .direct.forms import DirectFileField, DirectImageField, DirectUploadWidget, unfit_for_direct_uploads
from .widgets import FilePreviewWidget, render_preview

# direct_upload_fields' default: every field that can take direct uploads (as ModelForm's "__all__").
ALL_FIELDS: Literal["__all__"] = "__all__"

if TYPE_CHECKING:
    # What the mixin is mixed into, so its super() call and attributes are checked; at run
    # time it derives from object alone, as before.
    _AdminBase = admin.options.BaseModelAdmin[Any]
else:
    _AdminBase = object


class FilePreviewMixin(_AdminBase):
    """Mix into a ModelAdmin or an inline: every file and image field's input shows its current file.

    class EventAdmin(FilePreviewMixin, admin.ModelAdmin): ...

    A widget of your own for a field, given in formfield_overrides or by a subclass, is kept.

    On change forms, file fields upload from the browser straight to storage
    (keyed_storage.direct.forms), with a progress bar: by default every field that can
    (on KeyedStorage, with a key template for upload_to); name some to limit it to those,
    or none to turn it off:

        direct_upload_fields = ["audio", "slides"]   # or () for none; "__all__" by default
    """

    preview_widget = FilePreviewWidget
    direct_upload_fields: Collection[str] | Literal["__all__"] = ALL_FIELDS

    def takes_direct_uploads(self, db_field: models.FileField) -> bool:
        """Whether `db_field`'s input uploads straight to storage on change forms."""
        if self.direct_upload_fields == ALL_FIELDS:
            return unfit_for_direct_uploads(db_field) is None
        return db_field.name in self.direct_upload_fields

    def formfield_for_dbfield(
        self, db_field: models.Field[Any, Any], request: Any, **kwargs: Any
    ) -> forms.Field | None:
        # ModelAdmin merges its defaults (AdminFileWidget for file fields) into formfield_overrides
        # and, as here, takes the entry of the nearest class: an override for ImageField holds
        # for a KeyedImageField too.
        overrides = next(
            (
                self.formfield_overrides[cls]
                for cls in type(db_field).__mro__
                if cls in self.formfield_overrides
            ),
            {},
        )
        overridden = overrides.get("widget")
        if (
            isinstance(db_field, models.FileField)
            and "widget" not in kwargs
            and overridden in (None, AdminFileWidget)
        ):
            if self.takes_direct_uploads(db_field):
                user = getattr(request, "user", None)
                form_class = DirectImageField if isinstance(db_field, models.ImageField) else DirectFileField
                kwargs |= {"widget": DirectUploadWidget, "form_class": form_class, "user": user}
            else:
                kwargs["widget"] = self.preview_widget
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        errors = super().check(**kwargs)
        if self.direct_upload_fields == ALL_FIELDS:
            return errors
        if isinstance(self.direct_upload_fields, str):
            return [
                *errors,
                checks.Error(
                    f"{type(self).__name__}.direct_upload_fields is {self.direct_upload_fields!r}: "
                    f"it is {ALL_FIELDS!r} or a list of field names.",
                    obj=type(self),
                    id="keyed_storage.E012",
                ),
            ]
        for name in self.direct_upload_fields:
            why = _unfit(self.model, name)
            if why:
                errors.append(
                    checks.Error(
                        f"{type(self).__name__}.direct_upload_fields names {name!r}, which cannot "
                        f"take direct uploads: {why}.",
                        hint="Name file fields on KeyedStorage whose upload_to is a key template.",
                        obj=type(self),
                        id="keyed_storage.E012",
                    )
                )
        return errors


def _unfit(model: type[models.Model], name: str) -> str | None:
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return f"{model.__name__} has no such field"
    if not isinstance(field, models.FileField):
        return "it is not a file field"
    return unfit_for_direct_uploads(field)


def preview(
    field_name: str, *, description: str | None = None, size: tuple[int, int] = (96, 64)
) -> Callable[[models.Model], str]:
    """A list_display column previewing a file field: list_display = ["name", preview("logo")].

    An image shows as its smallest variant that covers `size` (the original when the field has
    no variants), with the width and height it is shown at, so the list does not jump while
    the pictures load. Each row's links are built as strings (no request to the storage per
    row); players load nothing until played.
    """

    @admin.display(description=description or field_name.replace("_", " "), ordering=field_name)
    def column(obj: models.Model) -> str:
        return render_preview(getattr(obj, field_name), size=size, preload="none")

    column.__name__ = f"{field_name}_preview"
    return column
