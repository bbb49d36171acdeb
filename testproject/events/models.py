"""The demo's event site: every file field stores under a meaningful key."""

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import models

from keyed_storage import KeyedStorage, key_template
from keyed_storage.keys import (
    event_background_key,
    event_logo_key,
    session_audio_key,
    session_slides_key,
    speaker_photo_key,
    sponsor_logo_key,
)
from keyed_storage.validators import ContentTypeValidator, FileSizeValidator

Validator = Callable[[Any], None]

# What each field accepts, told from the file's bytes (a text file named logo.png is refused
# with a message the form and the admin show), and how large it may be.
IMAGE: list[Validator] = [ContentTypeValidator("image/*"), FileSizeValidator(10 * 1024 * 1024)]
AUDIO: list[Validator] = [ContentTypeValidator("audio/*"), FileSizeValidator(500 * 1024 * 1024)]
SLIDES: list[Validator] = [ContentTypeValidator("application/pdf"), FileSizeValidator(100 * 1024 * 1024)]


class Event(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # An explicit storage on the Event's fields; the other models rely on STORAGES["default"],
    # which the settings point at KeyedStorage. Both end up in the same place.
    logo = models.ImageField(
        storage=KeyedStorage(), upload_to=event_logo_key, max_length=255, blank=True, validators=IMAGE
    )
    background = models.ImageField(
        storage=KeyedStorage(), upload_to=event_background_key, max_length=255, blank=True, validators=IMAGE
    )

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
    # The photo's size is stored in the row when the photo is saved, so pages can give
    # <img> its width and height without opening the file in storage.
    photo = models.ImageField(
        upload_to=speaker_photo_key,
        width_field="photo_width",
        height_field="photo_height",
        max_length=255,
        blank=True,
        validators=IMAGE,
    )
    photo_width = models.PositiveIntegerField(null=True, blank=True, editable=False)
    photo_height = models.PositiveIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Sponsor(models.Model):
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="sponsors")
    name = models.CharField(max_length=200)
    website = models.URLField(blank=True)
    logo = models.ImageField(upload_to=sponsor_logo_key, max_length=255, blank=True, validators=IMAGE)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Profile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    # keyed_storage.keys.user_avatar_key is "users/{id}/avatar", for a custom User model that
    # holds the avatar itself. On a separate Profile row that {id} would be the profile's,
    # so the key is built from the user's id instead: users/<user id>/avatar.
    avatar = models.ImageField(
        upload_to=key_template("users/{user_id}/avatar"), max_length=255, blank=True, validators=IMAGE
    )

    def __str__(self) -> str:
        return f"Profile of {self.user}"
