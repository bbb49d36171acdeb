"""Form widgets that show what a file field holds: a thumbnail for images, a player for audio and video."""

from __future__ import annotations

import posixpath
from typing import Any

from django.contrib.admin.widgets import AdminFileWidget
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from .images.markup import alternatives, choose, declared_variants, fit, original, srcset, variants

# Decided from the name alone: a preview never opens the file or asks the storage anything.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".svg", ".bmp", ".ico"})
AUDIO_EXTENSIONS = frozenset({".mp3", ".wav", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".flac", ".weba"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".webm", ".ogv", ".mov"})


def preview_kind(name: str) -> str:
    """'image', 'audio', 'video' or 'file' (a plain link), from the extension of `name`."""
    extension = posixpath.splitext(name)[1].lower()
    if extension in IMAGE_EXTENSIONS:
        return "image"
    if extension in AUDIO_EXTENSIONS:
        return "audio"
    if extension in VIDEO_EXTENSIONS:
        return "video"
    return "file"


def preview_context(file: Any, *, size: tuple[int, int], preload: str = "none") -> dict[str, Any] | None:
    """What the preview template needs for a FieldFile, or None when the field is empty.

    An image shows the smallest of its variants that covers the box (pictures.choose), or
    the original when the field has none; `width` and `height` are the size it is shown at
    when the row holds it, so a list keeps its layout while the pictures load, and `srcset`
    tells the browser the variant's real width (and the larger ones a dense screen may take).
    """
    name = getattr(file, "name", None)
    if not name:
        return None
    box_width, box_height = size
    kind = "image" if declared_variants(file) else preview_kind(name)
    context = {
        "kind": kind,
        "url": file.url,  # keyed_storage builds it as a string: no network I/O per row
        "filename": posixpath.basename(name),
        "max_width": box_width,
        "max_height": box_height,
        "preload": preload,
    }
    if kind == "image":
        context |= _picture_context(file, size)
    return context


def _picture_context(file: Any, box: tuple[int, int]) -> dict[str, Any]:
    pictures = list(variants(file).values())
    chosen = choose(pictures, box) or original(file)
    shown = fit(chosen.size, box) if chosen.size else (None, None)
    # Only stored variants: one a worker has yet to make would not load on a dense screen.
    stored = [picture for picture in pictures if picture.ready]
    choices = alternatives(chosen, stored) if chosen.variant else []
    return {
        "src": chosen.url,
        "srcset": srcset(choices),
        "sizes": f"{shown[0]}px" if choices else "",
        "width": shown[0],
        "height": shown[1],
        "variant": chosen.variant,
    }


def render_preview(file: Any, *, size: tuple[int, int] = (96, 64), preload: str = "none") -> SafeString:
    """HTML previewing a FieldFile ('' when it is empty), from keyed_storage/preview.html."""
    context = preview_context(file, size=size, preload=preload)
    if context is None:
        return SafeString("")
    return SafeString(render_to_string("keyed_storage/preview.html", {"preview": context}).strip())


class FilePreviewWidget(AdminFileWidget):
    """The admin's file input with a preview of the current file above it.

    Images show as a thumbnail (the smallest variant that covers preview_size, when the
    field has variants, each of which is listed with its size and link), audio and video as
    a player that reads only the metadata until played, anything else as a link. The
    template, keyed_storage/widgets/file_preview.html, can be overridden like any other.
    """

    template_name = "keyed_storage/widgets/file_preview.html"
    preview_size = (320, 200)

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        # Only a stored file has a URL; a file picked in a form that failed validation has not.
        if self.is_initial(value):
            context["widget"]["preview"] = preview_context(value, size=self.preview_size, preload="metadata")
            context["widget"]["variants"] = list(variants(value).values())
        return context
