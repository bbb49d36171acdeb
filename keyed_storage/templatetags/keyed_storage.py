"""{% load keyed_storage %}: the {% image %} tag, an <img> for a stored image or one of its variants."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString

from ..images.markup import image_html

register = template.Library()


@register.simple_tag
def image(
    file: Any,
    variant: str | None = None,
    *,
    alt: str = "",
    sizes: str | None = None,
    loading: str | None = "lazy",
    decoding: str | None = "async",
    **attributes: Any,
) -> SafeString:
    """{% image event.logo "card" alt=event.name sizes="(min-width: 800px) 640px, 100vw" class="card-img" %}

    <img src srcset sizes width height alt loading decoding ...> for the variant named (or
    the original: no name, or a field without variants), built from the row alone: no
    request to the storage. Nothing for an empty field. See pictures.image_html.
    """
    return image_html(file, variant, alt=alt, sizes=sizes, loading=loading, decoding=decoding, **attributes)
