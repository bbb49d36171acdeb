"""The demo's event site: every file field stores under a meaningful key."""

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import models

from keyed_storage.fields import KeyedImageField
from keyed_storage.images import Variant
from keyed_storage.validators import ContentTypeValidator, FileSizeValidator

from .keys import (
    event_background_key,
    event_logo_key,
    profile_avatar_key,
    session_audio_key,
    session_slides_key,
    speaker_photo_key,
    sponsor_logo_key,
)

Validator = Callable[[Any], None]

# What each field accepts, told from the file's bytes (a text file named logo.png is refused
# with a message the form and the admin show), and how large it may be.
IMAGE: list[Validator] = [ContentTypeValidator("image/*"), FileSizeValidator(10 * 1024 * 1024)]
AUDIO: list[Validator] = [ContentTypeValidator("audio/*"), FileSizeValidator(500 * 1024 * 1024)]
SLIDES: list[Validator] = [ContentTypeValidator("application/pdf"), FileSizeValidator(100 * 1024 * 1024)]


# Every picture is a KeyedImageField (always on KeyedStorage) with the sizes the pages show,
# made when the file is saved. Each stores the original's size in the row (width_field,
# height_field): pages then size and pick variants without asking the storage anything.
# The "_2x" variants are for screens with two device pixels per CSS pixel: {% image %} offers
# them in srcset and the browser takes them only there.


class Event(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    logo = KeyedImageField(
        upload_to=event_logo_key,
        variants={
            "thumb": Variant(160, 160),  # admin lists
            "card": Variant(320, 320),  # the event list's cards, the event page
            "card_2x": Variant(640, 640),
        },
        width_field="logo_width",
        height_field="logo_height",
        pending_field="logo_pending",  # which variants a worker has yet to make
        max_length=255,
        blank=True,
        validators=IMAGE,
    )
    logo_width = models.PositiveIntegerField(null=True, editable=False)
    logo_height = models.PositiveIntegerField(null=True, editable=False)
    logo_pending = models.JSONField(null=True, blank=True, editable=False)
    background = KeyedImageField(
        upload_to=event_background_key,
        variants={
            "thumb": Variant(320, 320),  # admin lists and forms: the whole picture
            "banner": Variant(960, 240, crop=True),  # the event page's 4:1 strip
            "banner_2x": Variant(1920, 480, crop=True),
        },
        width_field="background_width",
        height_field="background_height",
        pending_field="background_pending",  # which variants a worker has yet to make
        max_length=255,
        blank=True,
        validators=IMAGE,
    )
    background_width = models.PositiveIntegerField(null=True, editable=False)
    background_height = models.PositiveIntegerField(null=True, editable=False)
    background_pending = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Session(models.Model):
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="sessions")
    title = models.CharField(max_length=200)
    audio = models.FileField(upload_to=session_audio_key, max_length=255, blank=True, validators=AUDIO)
    slides = models.FileField(upload_to=session_slides_key, max_length=255, blank=True, validators=SLIDES)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.title


class Speaker(models.Model):
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="speakers")
    name = models.CharField(max_length=200)
    photo = KeyedImageField(
        upload_to=speaker_photo_key,
        variants={"thumb": Variant(120, 120), "thumb_2x": Variant(240, 240)},
        width_field="photo_width",
        height_field="photo_height",
        pending_field="photo_pending",  # which variants a worker has yet to make
        max_length=255,
        blank=True,
        validators=IMAGE,
    )
    photo_width = models.PositiveIntegerField(null=True, editable=False)
    photo_height = models.PositiveIntegerField(null=True, editable=False)
    photo_pending = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Sponsor(models.Model):
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="sponsors")
    name = models.CharField(max_length=200)
    website = models.URLField(blank=True)
    logo = KeyedImageField(
        upload_to=sponsor_logo_key,
        # 48 pixels high, as wide as the logo is: a row of logos of one height.
        variants={"thumb": Variant(None, 48), "thumb_2x": Variant(None, 96)},
        width_field="logo_width",
        height_field="logo_height",
        pending_field="logo_pending",  # which variants a worker has yet to make
        max_length=255,
        blank=True,
        validators=IMAGE,
    )
    logo_width = models.PositiveIntegerField(null=True, editable=False)
    logo_height = models.PositiveIntegerField(null=True, editable=False)
    logo_pending = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Profile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    avatar = KeyedImageField(
        upload_to=profile_avatar_key,  # users/<user id>/avatar (see keys.py)
        # Squares only: previews show these crops too, rather than fetch the original.
        variants={"thumb": Variant(128, 128, crop=True), "thumb_2x": Variant(256, 256, crop=True)},
        width_field="avatar_width",
        height_field="avatar_height",
        pending_field="avatar_pending",  # which variants a worker has yet to make
        max_length=255,
        blank=True,
        validators=IMAGE,
    )
    avatar_width = models.PositiveIntegerField(null=True, editable=False)
    avatar_height = models.PositiveIntegerField(null=True, editable=False)
    avatar_pending = models.JSONField(null=True, blank=True, editable=False)

    def __str__(self) -> str:
        return f"Profile of {self.user}"
