"""Step 4 of "Add it to your project": the admin, with a preview of each picture."""

from django.contrib import admin

from keyed_storage.admin import FilePreviewMixin, preview

from .models import Photo


@admin.register(Photo)
class PhotoAdmin(FilePreviewMixin, admin.ModelAdmin):
    list_display = ["title", preview("image")]
