"""The demo's admin: every file field previews itself, in the lists and in the forms; images by
their smallest variant that covers the preview, and the change forms list every variant.

On change forms every file field uploads from the browser straight to the bucket (or the
local endpoint) with a progress bar: FilePreviewMixin's default for fields on KeyedStorage
with a key template. Recordings run to hundreds of megabytes, so it matters most there."""

from django.contrib import admin
from django.db import models

from keyed_storage.admin import FilePreviewMixin, preview

from .models import Event, Profile, Session, Speaker, Sponsor


class SessionInline(FilePreviewMixin, admin.StackedInline):
    model = Session
    extra = 0


@admin.register(Event)
class EventAdmin(FilePreviewMixin, admin.ModelAdmin):
    list_display = ["name", preview("logo"), preview("background")]
    search_fields = ["name"]
    save_as = True  # "Save as new" copies an event; the copy shares its files until it gets its own
    inlines = [SessionInline]


@admin.register(Session)
class SessionAdmin(FilePreviewMixin, admin.ModelAdmin):
    list_display = ["title", "event", preview("audio"), preview("slides")]
    list_filter = ["event"]


@admin.register(Speaker)
class SpeakerAdmin(FilePreviewMixin, admin.ModelAdmin):
    list_display = ["name", "event", preview("photo", size=(64, 64)), "original_size"]
    list_filter = ["event"]
    readonly_fields = ["photo_width", "photo_height"]

    @admin.display(description="original")
    def original_size(self, speaker: Speaker) -> str:
        # From the row (width_field, height_field), like the preview beside it.
        return f"{speaker.photo_width} \u00d7 {speaker.photo_height}" if speaker.photo else ""


@admin.register(Sponsor)
class SponsorAdmin(FilePreviewMixin, admin.ModelAdmin):
    list_display = ["name", "event", preview("logo")]
    list_filter = ["event"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # Django 6's default, today


@admin.register(Profile)
class ProfileAdmin(FilePreviewMixin, admin.ModelAdmin):
    list_display = ["user", preview("avatar", size=(48, 48))]
