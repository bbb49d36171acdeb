"""The demo's event site: every file field stores under a meaningful key."""

from django.conf import settings
from django.db import models

from keyed_storage import KeyedStorage, key_template
from keyed_storage.keys import (
    event_logo_key,
    session_audio_key,
    session_slides_key,
)


class Event(models.Model):
    name = models.CharField(max_length=200)
    # An explicit storage; the fields below rely on STORAGES["default"] instead.
    logo = models.ImageField(storage=KeyedStorage(), upload_to=event_logo_key, blank=True)

    def __str__(self) -> str:
        return self.name


class Session(models.Model):
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="sessions")
    title = models.CharField(max_length=200)
    audio = models.FileField(upload_to=session_audio_key, blank=True)
    slides = models.FileField(upload_to=session_slides_key, blank=True)

    def __str__(self) -> str:
        return self.title


class Profile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    # The key is the user's, not the profile row's: users/<user id>/avatar.
    avatar = models.ImageField(upload_to=key_template("users/{user_id}/avatar"), blank=True)

    def __str__(self) -> str:
        return f"Profile of {self.user}"
