"""The models and the expected world of the lifecycle state machine (test_state_machine.py).

The machine's model, Item, has one file field of each shape: a FileField on KeyedStorage, a
KeyedImageField with variants and width/height fields, one with variants and no dimension
fields, one with dimension fields and no variants, and a FileField with a shared default.
The first KeyedImageField records its pending variants (pending_field), so
with a task backend its larger variant is made by the worker (the machine's `worker` rule).
It is registered in the app registry for the test's duration (apps.get_models() must see it:
the `orphans` and `variants` commands audit every installed model), and unregistered after.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.apps import apps
from django.db import connection, models
from django.db.models.signals import post_init
from PIL import Image

from keyed_storage import KeyedStorage, key_template
from keyed_storage.fields import KeyedImageField
from keyed_storage.images.variants import Variant
from keyed_storage.lifecycle import replacement

# The shared default every new Item's `shared` field names: one object many rows hold.
DEFAULT = "lifecycle-defaults/shared.bin"
DEFAULT_BYTES = b"the shared default, never deleted\n"

IMAGE_FIELDS = ("picture", "sketch", "photo")
FILE_FIELDS = ("doc", "shared")
FIELDS = (*FILE_FIELDS, *IMAGE_FIELDS)


@dataclass(frozen=True)
class Held:
    """What a committed row's field holds: the stored name, the bytes saved, the image's size."""

    name: str
    data: bytes
    size: tuple[int, int] | None = None


def png(width: int, height: int, color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def damaged_png(kind: str, width: int = 20, height: int = 20) -> bytes:
    """A PNG broken as files arrive broken: cut short, a flipped byte in its pixels, or a
    chunk whose checksum is wrong (Pillow raises SyntaxError for that one when decoding)."""
    data = bytearray(png(width, height, "orange"))
    idat = data.index(b"IDAT")
    if kind == "truncated":
        return bytes(data[: idat + 10])
    if kind == "flipped":
        data[idat + 8] ^= 0xFF
        return bytes(data)
    # "checksum": the IDAT chunk's CRC no longer matches its data
    length = int.from_bytes(data[idat - 4 : idat], "big")
    crc_at = idat + 4 + length
    crc = zlib.crc32(bytes(data[idat : idat + 4 + length])) ^ 0xFFFF
    data[crc_at : crc_at + 4] = crc.to_bytes(4, "big")
    return bytes(data)


@contextmanager
def item_model() -> Iterator[type[models.Model]]:
    """Item, in the events app's registry and with its table, for the block."""

    class Item(models.Model):
        doc = models.FileField(
            storage=KeyedStorage(), upload_to=key_template("lifecycle/{id}/doc"), max_length=255, blank=True
        )
        picture = KeyedImageField(
            upload_to=key_template("lifecycle/{id}/picture"),
            variants={"thumb": Variant(16, 16, crop=True), "wide": Variant(40, None)},
            width_field="picture_width",
            height_field="picture_height",
            pending_field="picture_pending",  # with a task worker, "wide" is made by it
            blank=True,
        )
        picture_width = models.PositiveIntegerField(null=True, editable=False)
        picture_height = models.PositiveIntegerField(null=True, editable=False)
        picture_pending = models.JSONField(null=True, blank=True, editable=False)
        sketch = KeyedImageField(
            upload_to=key_template("lifecycle/{id}/sketch"), variants={"thumb": Variant(12, 12)}, blank=True
        )
        photo = KeyedImageField(
            upload_to=key_template("lifecycle/{id}/photo"),
            width_field="photo_width",
            height_field="photo_height",
            blank=True,
        )
        photo_width = models.PositiveIntegerField(null=True, editable=False)
        photo_height = models.PositiveIntegerField(null=True, editable=False)
        shared = models.FileField(
            storage=KeyedStorage(),
            upload_to=key_template("lifecycle/{id}/shared"),
            default=DEFAULT,
            max_length=255,
            blank=True,
        )

        class Meta:
            app_label = "events"
            db_table = "lifecycle_item"

    # As in a project, whose models are imported before keyed_storage's AppConfig.ready()
    # connects its post_init receiver: ImageField's own (the dimension fields') run first.
    post_init.disconnect(dispatch_uid="keyed_storage.replacement.loaded")
    replacement.connect()
    with connection.schema_editor() as editor:
        editor.create_model(Item)
    try:
        yield Item
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(Item)
        del apps.all_models["events"]["item"]
        apps.clear_cache()
