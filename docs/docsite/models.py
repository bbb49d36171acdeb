"""The tutorial's model, step 3 of "Add it to your project" (docs/tutorial/first-project.rst), and the
background how-to's (docs/howto/background.rst)."""

from django.db import models

from keyed_storage import key_template
from keyed_storage.fields import KeyedImageField
from keyed_storage.images import Variant


class Photo(models.Model):
    title = models.CharField(max_length=200)
    image = KeyedImageField(
        upload_to=key_template("photos/{id}/image"),
        variants={"thumb": Variant(320, 320, crop=True)},
        width_field="width",
        height_field="height",
    )
    width = models.PositiveIntegerField(null=True, editable=False)
    height = models.PositiveIntegerField(null=True, editable=False)

    def __str__(self) -> str:
        return self.title


class Poster(models.Model):
    """The model of "Run image work in the background" (docs/howto/background.rst): its
    variants but the smallest are made by a worker when a task backend is configured."""

    title = models.CharField(max_length=200)
    image = KeyedImageField(
        upload_to=key_template("posters/{id}/image"),
        variants={
            "thumb": Variant(160, 160),
            "card": Variant(640, 640),
            "square": Variant(320, 320, crop=True),
        },
        width_field="width",
        height_field="height",
        pending_field="pending",
    )
    width = models.PositiveIntegerField(null=True, editable=False)
    height = models.PositiveIntegerField(null=True, editable=False)
    pending = models.JSONField(null=True, blank=True, editable=False)

    def __str__(self) -> str:
        return self.title
