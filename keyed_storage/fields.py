"""KeyedImageField: an ImageField on KeyedStorage whose declared variants are made when a file is saved."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django import forms
from django.core import checks
from django.core.files.base import ContentFile, File
from django.core.files.storage import Storage
from django.db import models
from django.db.models.fields.files import ImageFieldFile
from django.db.models.signals import post_save

from . import background
from .images import progress
from .images.rendering import Rendered, displayed_size, open_image, render, render_sized
from .images.variants import (
    DEFAULT_MAX_PIXELS,
    ImageRefused,
    Variant,
    check_variants,
    is_variant_of,
    variant_name,
    variants_prefix,
)
from .keys import FinishedName, has_token
from .lifecycle.replacement import remove_unclaimed
from .storage import KeyedStorage
from .validators import ImagePixelsValidator

#: Key templates make names of <key>/<32-digit token>/<filename>; Django's default of 100
#: characters is too short for most of them (see the check keyed_storage.W003).
DEFAULT_MAX_LENGTH = 255


class StoredVariant:
    """One variant of a stored image: its name, absolute URL, width and height, without I/O.

    `ready` is False while a worker has yet to store it (KeyedImageField's pending_field): the
    name and URL are then those of a stand-in that is stored (a larger variant of its shape,
    else the original), and the width and height still the variant's, so a page lays it out
    as it will be and shows no broken image meanwhile.
    """

    __slots__ = ("height", "name", "ready", "storage", "width")

    def __init__(self, name: str, storage: Storage, width: int, height: int, *, ready: bool = True) -> None:
        self.name, self.storage, self.width, self.height = name, storage, width, height
        self.ready = ready

    @property
    def url(self) -> str:
        return self.storage.url(self.name)

    def __repr__(self) -> str:
        return f"<StoredVariant {self.name!r} {self.width}x{self.height}>"


class KeyedImageFieldFile(ImageFieldFile):
    """The value of a KeyedImageField: an ImageFieldFile with .variant(name)."""

    field: KeyedImageField

    def variant(self, name: str) -> StoredVariant:
        """The variant `name` of this image: .url, .width and .height, computed without I/O
        when the field has width_field and height_field (else the original's size is read once)."""
        spec = self.field.variants.get(name)
        if spec is None:
            declared = ", ".join(sorted(self.field.variants)) or "none"
            where = f"{self.field.model.__name__}.{self.field.name}"
            raise KeyError(f"{where} has no variant {name!r} (declared: {declared}).")
        original = self._stored_name()
        width, height = self._shown_size()
        size = spec.size_for(width, height)
        unready = progress.unready(self.instance, self.field)
        if name not in unready:
            return StoredVariant(variant_name(original, name, spec), self.storage, *size)
        return StoredVariant(self._stand_in(spec, size, unready), self.storage, *size, ready=False)

    def _stand_in(self, wanted: Variant, size: tuple[int, int], unready: frozenset[str]) -> str:
        """What to show for a variant not stored yet: the smallest stored variant of its kind
        (fitted, or cropped to its shape) that covers its size, else the original."""
        shown, original = self._shown_size(), self._stored_name()
        covering = []
        for other, spec in self.field.variants.items():
            other_size = spec.size_for(*shown)
            same_kind = spec.crop == wanted.crop and (
                not spec.crop or other_size[0] * size[1] == other_size[1] * size[0]
            )
            if other not in unready and same_kind and other_size[0] >= size[0] and other_size[1] >= size[1]:
                covering.append((other_size[0] * other_size[1], variant_name(original, other, spec)))
        return min(covering)[1] if covering else original

    def unready_variants(self) -> frozenset[str]:
        """The names of the variants a worker has yet to store (none when they are all stored)."""
        return progress.unready(self.instance, self.field)

    def _stored_name(self) -> str:
        if not self.name:
            raise ValueError(f"The '{self.field.name}' attribute has no file associated with it.")
        return self.name

    def variants(self) -> dict[str, StoredVariant]:
        """Every declared variant, by name."""
        return {name: self.variant(name) for name in self.field.variants}

    def _shown_size(self) -> tuple[int, int]:
        width_field, height_field = self.field.dimension_fields
        if width_field and height_field:
            width = getattr(self.instance, width_field)
            height = getattr(self.instance, height_field)
            if width and height:
                return int(width), int(height)
        return int(self.width), int(self.height)

    def _get_image_dimensions(self) -> tuple[int, int] | tuple[None, None]:
        # The size as shown (EXIF orientation applied), which is what pages lay out and what
        # variants are made from; Django's own reading ignores the orientation.
        if not hasattr(self, "_dimensions_cache"):
            close = self.closed
            self.open()
            size: tuple[int, int] | tuple[None, None]
            try:
                size = displayed_size(self.file)
            except ImageRefused:
                size = (None, None)
            finally:
                if close:
                    self.close()
                else:
                    self.file.seek(0)
            self._dimensions_cache = size
        return self._dimensions_cache

    def save(self, name: str, content: File[Any], save: bool = True) -> None:
        """Store the original, then its variants; if any step fails, nothing of it stays stored.
        The row's width_field and height_field get the size as shown."""
        variants = self.field.request_variants()
        rendered: dict[str, Rendered] = {}
        size: tuple[int, int] | tuple[None, None]
        if self.field.variants:
            rendered, size = _rendered(content, variants, self.field.max_pixels)
        else:
            try:
                size = displayed_size(content)
            except ImageRefused:
                size = (None, None)  # without variants any file is stored, as by Django's ImageField
        content.seek(0)
        self._dimensions_cache = size
        super().save(name, content, save=False)
        self._store_variants(rendered)
        self._hand_over(rendered)
        if save:
            self.instance.save()

    def _hand_over(self, made: Mapping[str, object]) -> None:
        """With a worker, record in the row which variants are still to come, and have them
        enqueued once the row is saved and committed (KeyedImageField's post_save)."""
        if self.field.in_background():
            progress.begin(self.instance, self.field, made)
            self.instance.__dict__.setdefault(_VARIANTS_DUE, {})[self.field.attname] = self.name

    def _set_instance_attribute(self, name: str, content: File[Any]) -> None:
        # Django's ImageFieldFile measures `content` by assigning it to the row, which finds no
        # file in an unnamed one (row.photo.save("a.jpg", ContentFile(data))) and leaves the
        # size empty. This file knows its size: it was measured before it was stored.
        self.instance.__dict__[self.field.attname] = self
        self.field.update_dimension_fields(self.instance, force=True)
        # Then the name, as Django leaves it: what is read next is what was stored, not `content`.
        self.instance.__dict__[self.field.attname] = self.name

    def store_variants(self) -> None:
        """Render and store the variants of the original already stored under this name (a
        direct upload's): its one full read. If that fails, the ImageRefused (a
        ValidationError) or storage error is raised, and the original goes with what was
        stored of its variants only if it is this request's own (the FinishedName its finish
        returned) and no row names it: a form sent again finishes the same upload again, and
        its failure must not remove what the first send's row holds."""
        name = self._stored_name()
        try:
            with self.storage.open(name, "rb") as original:
                rendered = render(original, self.field.request_variants(), max_pixels=self.field.max_pixels)
            self._store_variants(rendered, own=False)
        except BaseException:
            if isinstance(name, FinishedName):
                remove_unclaimed(self.field, name)
            raise
        self._hand_over(rendered)

    def make_variants(self, names: Iterable[str] | None = None) -> list[str]:
        """Render and store the variants the row still waits for (or those `names`), from one
        read of the stored original (what the worker's task does); the names of those stored.
        A failure leaves the original and the row as they are, for the task to try again."""
        wanted = self.unready_variants() if names is None else names
        missing = {name: self.field.variants[name] for name in sorted(wanted)}
        if not missing:
            return []
        with self.storage.open(self._stored_name(), "rb") as original:
            rendered = render(original, missing, max_pixels=self.field.max_pixels)
        self._store_variants(rendered, own=False)
        return list(rendered)

    def _store_variants(self, rendered: dict[str, Rendered], *, own: bool = True) -> None:
        """Store the rendered variants beside the original; if one fails and the original is
        `own` (just stored by this save), the original and the variants stored go."""
        original = self._stored_name()
        variants = self.field.variants
        storage = self.field.keyed_storage
        stored: list[str] = []
        try:
            for key, output in rendered.items():
                target = variant_name(original, key, variants[key])
                # Beside its original, under the same token: as immutable as the original.
                stored.append(
                    storage.save(
                        target, ContentFile(output.data), overwrite=True, immutable=has_token(original)
                    )
                )
        except BaseException:
            for leftover in [original, *stored] if own else []:
                storage.delete(leftover)
            raise

    save.alters_data = True  # type: ignore[attr-defined]  # Django's marker for templates


class KeyedImageFormField(forms.ImageField):
    """The form field: the pixel limit is checked from the header first, so a decompression
    bomb gets this message rather than Pillow's warning or a generic "not a valid image".

    With variants, the file is rendered here, so a picture Pillow cannot decode (damaged past
    its header, which Django's check reads) is a form error rather than a failed save; the
    save stores what was rendered here instead of decoding the file again.
    """

    def __init__(
        self,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        variants: Mapping[str, Variant] | None = None,
        **kwargs: Any,
    ) -> None:
        self.max_pixels = max_pixels
        self.variants = dict(variants or {})
        super().__init__(**kwargs)

    def to_python(self, data: Any) -> Any:
        if data is not None and hasattr(data, "read"):
            try:
                open_image(data, max_pixels=self.max_pixels)
            except ImageRefused as refused:
                if refused.code == "image_pixels":
                    raise
            finally:
                data.seek(0)
        checked: Any = super().to_python(data)
        if self.variants and hasattr(checked, "read"):
            try:
                rendered = render_sized(checked, self.variants, max_pixels=self.max_pixels)
            finally:
                checked.seek(0)
            setattr(checked, _RENDERED, (self.variants, self.max_pixels, rendered))
        return checked


# Where a form field leaves the variants it rendered of an uploaded file, for the save.
_RENDERED = "_keyed_storage_rendered"
# Where a save leaves, by field, the name whose remaining variants are due once the row is saved.
_VARIANTS_DUE = "_keyed_storage_variants_due"


def _rendered(
    content: File[Any], variants: Mapping[str, Variant], max_pixels: int
) -> tuple[dict[str, Rendered], tuple[int, int]]:
    """The variants of `content` and its size as shown: from its form field, else rendered now."""
    rendered_by_form = getattr(content, _RENDERED, None)
    if rendered_by_form is not None and rendered_by_form[:2] == (variants, max_pixels):
        rendered, size = rendered_by_form[2]
        return dict(rendered), size
    return render_sized(content, variants, max_pixels=max_pixels)


class KeyedImageField(models.ImageField):
    """An ImageField on KeyedStorage() whose variants are made and stored with each new file::

        photo = KeyedImageField(
            upload_to=key_template("events/{event_id}/speakers/{id}/photo"),
            variants={"thumb": Variant(160, 160, crop=True), "card": Variant(640, None)},
            width_field="photo_width", height_field="photo_height",
        )

    `max_pixels` refuses larger images (decompression bombs) with a form error before they
    are decoded. Migrations record the variants and nothing from the environment.

    `pending_field` names a ``models.JSONField(null=True, blank=True, editable=False)`` of the
    model. With it, and a task worker configured (keyed_storage.background), a save stores the
    original and its smallest variant, and a worker makes the others; until it has, the row
    records which are missing and pages show a stored stand-in (keyed_storage.images.progress).
    Without it, or without a worker, every variant is made in the request.
    """

    attr_class = KeyedImageFieldFile

    def __init__(
        self,
        verbose_name: str | None = None,
        name: str | None = None,
        width_field: str | None = None,
        height_field: str | None = None,
        *,
        variants: Mapping[str, Variant] | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        pending_field: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.variants = check_variants(variants)
        named = isinstance(pending_field, str) and pending_field.isidentifier()
        if pending_field is not None and not named:
            raise ValueError(f"pending_field is the name of a JSONField of the model, not {pending_field!r}.")
        self.pending_field = pending_field
        if not isinstance(max_pixels, int) or isinstance(max_pixels, bool) or max_pixels < 1:
            raise ValueError(f"max_pixels is a number of pixels (1 or more), not {max_pixels!r}.")
        self.max_pixels = max_pixels
        kwargs.setdefault("storage", KeyedStorage())
        kwargs.setdefault("max_length", DEFAULT_MAX_LENGTH)
        super().__init__(verbose_name, name, width_field, height_field, **kwargs)
        if not isinstance(self.storage, KeyedStorage):
            raise TypeError(
                f"KeyedImageField stores its variants through KeyedStorage; storage={self.storage!r} "
                "is another storage. Leave storage out (it defaults to KeyedStorage()), or use "
                "Django's ImageField."
            )

    def in_background(self) -> bool:
        """Whether a worker makes this field's variants (all but the smallest) after a save."""
        return bool(self.variants) and self.pending_field is not None and background.in_background()

    def request_variants(self) -> dict[str, Variant]:
        """The variants a save makes itself: all of them, or with a worker only the smallest.

        The smallest stays in the request because rendering it decodes the picture (at 1/8
        scale for a JPEG thumbnail), which proves the picture can be decoded, so a damaged
        one is still a form error, and lists of thumbnails have theirs at once.
        """
        if not self.in_background():
            return self.variants
        smallest = min(self.variants, key=lambda name: _area(self.variants[name]))
        return {smallest: self.variants[smallest]}

    def contribute_to_class(self, cls: type[models.Model], name: str, **kwargs: Any) -> None:  # type: ignore[override]  # as django-stubs' FileField
        super().contribute_to_class(cls, name, **kwargs)
        if not cls._meta.abstract and self.pending_field:
            post_save.connect(self._enqueue_variants, sender=cls)

    def _enqueue_variants(
        self,
        sender: type[models.Model],
        instance: models.Model,
        raw: bool = False,
        using: str | None = None,
        update_fields: Any = None,
        **kwargs: Any,
    ) -> None:
        """Once a row whose save left variants to make is saved, enqueue them for after commit."""
        due = instance.__dict__.get(_VARIANTS_DUE, {}).pop(self.attname, None)
        if due is None or raw or instance.pk is None or getattr(instance, self.attname).name != due:
            return
        assert self.pending_field is not None
        if update_fields is not None and self.pending_field not in update_fields:
            # The caller saved the file's column alone: the record of what is to come goes too.
            record = getattr(instance, self.pending_field)
            sender._base_manager.using(using).filter(pk=instance.pk).update(**{self.pending_field: record})
        task, model, pk = "keyed_storage.tasks.make_variants", sender._meta.label, str(instance.pk)
        background.enqueue_after_commit(task, model, pk, self.name, due, using=using)

    @property
    def keyed_storage(self) -> KeyedStorage:
        assert isinstance(self.storage, KeyedStorage)  # checked in __init__
        return self.storage

    @property
    def dimension_fields(self) -> tuple[str | None, str | None]:
        # ImageField's own attributes, which django-stubs does not declare.
        return getattr(self, "width_field", None), getattr(self, "height_field", None)

    @property
    def default_validators(self) -> list[Any]:  # type: ignore[override]  # a list per field
        return [*super().default_validators, ImagePixelsValidator(self.max_pixels)]

    def update_dimension_fields(
        self, instance: models.Model, force: bool = False, *args: Any, **kwargs: Any
    ) -> None:
        """Django's, except when a row is made (post_init): a stored file is not measured then.

        Django's reads the file when the row's width or height is empty, so each load of such
        a row costs a read from storage (in S3 a request, and an error when S3 is unreachable).
        A file not yet stored (Model(photo=File(...))) is measured, without I/O; a stored one
        when it is assigned or saved.
        """
        if not force:
            value = instance.__dict__.get(self.attname)
            if not isinstance(value, File) or getattr(value, "_committed", False):
                return
        super().update_dimension_fields(instance, force, *args, **kwargs)

    def formfield(self, **kwargs: Any) -> Any:
        return super().formfield(
            **{
                "form_class": KeyedImageFormField,
                "max_pixels": self.max_pixels,
                "variants": self.request_variants(),
                **kwargs,
            }
        )

    def vet(self, file: File[Any]) -> None:
        """Refuse a file that cannot become this field's image, before anything is written:
        keyed_storage calls it before inserting a new row whose file waits for its id."""
        if self.variants:
            open_image(file, max_pixels=self.max_pixels)
            file.seek(0)

    def deconstruct(self) -> Any:
        name, _, args, kwargs = super().deconstruct()
        if isinstance(kwargs.get("storage"), KeyedStorage):
            del kwargs["storage"]  # the default: KeyedStorage()
        if kwargs.get("max_length") == DEFAULT_MAX_LENGTH:
            del kwargs["max_length"]
        elif "max_length" not in kwargs:
            kwargs["max_length"] = 100  # FileField drops its own default, which is not ours
        if self.variants:
            kwargs["variants"] = self.variants
        if self.max_pixels != DEFAULT_MAX_PIXELS:
            kwargs["max_pixels"] = self.max_pixels
        if self.pending_field is not None:
            kwargs["pending_field"] = self.pending_field
        return name, "keyed_storage.fields.KeyedImageField", args, kwargs

    def delete_stored(self, name: str) -> None:
        """Delete a stored original and every variant stored beside it: one listing and one
        batched delete (S3: a DeleteObjects), however many variants there are."""
        storage = self.keyed_storage
        variants = [c for c in storage.names_starting_with(variants_prefix(name)) if is_variant_of(c, name)]
        storage.delete_many([*variants, name])

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        errors = [*super().check(**kwargs), *self._check_pending_field()]
        if self.variants and not all(self.dimension_fields):
            errors.append(
                checks.Warning(
                    f"{self.model.__name__}.{self.name} declares variants but no width_field and "
                    "height_field, so a variant's width and height need the original read from "
                    "storage.",
                    hint="Add two PositiveIntegerField(null=True, editable=False) fields and name "
                    "them in width_field= and height_field=; then pages size variants without I/O.",
                    obj=self,
                    id="keyed_storage.W004",
                )
            )
        return errors

    def _check_pending_field(self) -> list[checks.CheckMessage]:
        if self.pending_field is None:
            return []
        where = f"{self.model.__name__}.{self.name}"
        try:
            target = self.model._meta.get_field(self.pending_field)
        except Exception:
            target = None
        if isinstance(target, models.JSONField) and target.null:
            return []
        return [
            checks.Error(
                f"{where} names pending_field={self.pending_field!r}, which is not a nullable JSONField "
                f"of {self.model.__name__}.",
                hint=f"Add {self.pending_field} = models.JSONField(null=True, blank=True, editable=False) "
                "to the model, then makemigrations.",
                obj=self,
                id="keyed_storage.E013",
            )
        ]


def _area(spec: Variant) -> int:
    """How many pixels a variant has at most, for choosing the smallest."""
    width, height = spec.width or spec.height or 0, spec.height or spec.width or 0
    return width * height
