"""What a page shows of a stored image: which variant suits a spot, and the <img> that offers it.

Everything here is string work on the row. Links come from the field's declared variants
(`images.variant_name`, then the storage's `url()`), sizes from the row's width_field and
height_field, which KeyedImageField fills with the size as shown. Nothing opens, sizes or
lists a stored file, so a page of a hundred thumbnails makes no request to the storage.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from .variants import Variant, variant_name

Size = tuple[int, int]

# The names an attribute given to image_html() may have; anything else could break the tag.
_ATTRIBUTE_NAME = re.compile(r"[a-z][a-z0-9-]*")
# Computed from the file: a caller cannot give them.
COMPUTED_ATTRIBUTES = frozenset({"src", "srcset", "width", "height"})


@dataclass(frozen=True, slots=True)
class Picture:
    """The original or one variant of a stored image: its link and, when the row tells, its size.

    `whole` is true when it shows the whole picture: the original, a fitted variant, or a
    cropped one whose shape is the original's. `ready` is false for a variant a worker has
    yet to store (its URL would not answer yet).
    """

    url: str
    size: Size | None
    variant: str | None = None  # None for the original
    spec: Variant | None = None
    whole: bool = True
    ready: bool = True

    @property
    def width(self) -> int | None:
        return self.size[0] if self.size else None

    @property
    def height(self) -> int | None:
        return self.size[1] if self.size else None


def declared_variants(file: Any) -> Mapping[str, Variant]:
    """The variants the file's field declares; none for Django's own fields."""
    variants: Mapping[str, Variant] | None = getattr(getattr(file, "field", None), "variants", None)
    return variants or {}


def shown_size(file: Any) -> Size | None:
    """The original's size from the row's width_field and height_field, or None when the row
    does not hold it (the fields are not declared, or were never filled)."""
    field, instance = getattr(file, "field", None), getattr(file, "instance", None)
    width_field, height_field = getattr(field, "width_field", None), getattr(field, "height_field", None)
    if instance is None or not width_field or not height_field:
        return None
    width, height = getattr(instance, width_field, None), getattr(instance, height_field, None)
    if not isinstance(width, int) or not isinstance(height, int) or width < 1 or height < 1:
        return None
    return width, height


def original(file: Any) -> Picture:
    return Picture(file.url, shown_size(file))


def variants(file: Any) -> dict[str, Picture]:
    """Every declared variant of a stored file, by name.

    A variant's size is known when the row holds the original's size, and for a cropped
    variant always (it is exactly its spec); a fitted variant of an original of unknown size
    has none, because it may be smaller than its bounds (variants are never enlarged).
    """
    shown = shown_size(file)
    unready = _unready(file)
    pictures = {}
    for name, spec in declared_variants(file).items():
        size: Size | None = None
        if shown is not None:
            size = spec.size_for(*shown)
        elif spec.crop:
            assert spec.width is not None and spec.height is not None  # Variant requires both
            size = (spec.width, spec.height)
        whole = not spec.crop or (shown is not None and size is not None and same_shape(size, shown))
        url = file.storage.url(variant_name(file.name, name, spec))
        pictures[name] = Picture(url, size, name, spec, whole, name not in unready)
    return pictures


def _unready(file: Any) -> frozenset[str]:
    """The variants of the file a worker has yet to store (from the row: no I/O)."""
    unready = getattr(file, "unready_variants", None)
    return unready() if unready is not None else frozenset()


def same_shape(one: Size, other: Size) -> bool:
    """True when two sizes have the same aspect ratio, give or take the half pixel of rounding."""
    (width, height), (other_width, other_height) = one, other
    return abs(width * other_height - other_width * height) <= (width + other_width) / 2


def fit(size: Size, box: Size) -> Size:
    """`size` scaled down to fit inside `box`, keeping its aspect ratio; never enlarged."""
    (width, height), (box_width, box_height) = size, box
    scale = min(box_width / width, box_height / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def choose(pictures: list[Picture], box: Size) -> Picture | None:
    """The variant to show in a box of box[0] x box[1] CSS pixels (a preview), or None when
    there are no variants (show the original).

    The candidates are the variants that show the whole picture, or when there are none the
    cropped ones (a field of square avatars previews its squares rather than fetch the
    originals). Of these, the smallest that covers the box (as large as the box in one
    dimension at least, so it is shown scaled down or as it is, never enlarged), else the
    largest. With the original's size unknown, fitted variants are judged by their bounds.
    """
    pictures = [picture for picture in pictures if picture.ready]
    candidates = [picture for picture in pictures if picture.whole] or pictures
    if not candidates:
        return None
    covering = [picture for picture in candidates if _covers(picture, box)]
    if covering:
        return min(covering, key=_extent)
    return max(candidates, key=_extent)


def _covers(picture: Picture, box: Size) -> bool:
    box_width, box_height = box
    if picture.size is not None:
        width, height = picture.size
        return width >= box_width or height >= box_height
    # Its real size is unknown and at most its bounds: only bounds over the whole box are sure.
    assert picture.spec is not None
    bounds = picture.spec.width, picture.spec.height
    return all(bound is None or bound >= side for bound, side in zip(bounds, box, strict=True))


def _extent(picture: Picture) -> int:
    if picture.size is not None:
        return picture.size[0] * picture.size[1]
    assert picture.spec is not None
    width, height = picture.spec.width, picture.spec.height
    return (width or height or 0) * (height or width or 0)


def alternatives(chosen: Picture, pictures: list[Picture]) -> list[Picture]:
    """The same picture at every size there is (for srcset), narrowest first, one per width:
    for a whole picture every whole variant, for a crop the crops of its shape. Empty when
    the chosen picture's size is unknown."""
    if chosen.size is None:
        return []
    same = [
        picture
        for picture in pictures
        if picture.size is not None
        and (picture.whole if chosen.whole else not picture.whole and same_shape(picture.size, chosen.size))
    ]
    by_width: dict[int, Picture] = {}
    for picture in [chosen, *same]:
        assert picture.size is not None
        by_width.setdefault(picture.size[0], picture)
    return [by_width[width] for width in sorted(by_width)]


def srcset(pictures: list[Picture]) -> str:
    return ", ".join(f"{picture.url} {picture.width}w" for picture in pictures)


def image_html(
    file: Any,
    variant: str | None = None,
    *,
    alt: str = "",
    sizes: str | None = None,
    loading: str | None = "lazy",
    decoding: str | None = "async",
    **attributes: Any,
) -> SafeString:
    """An <img> for a stored image, or for one of its variants: what {% image %} renders.

    A variant gets src, srcset (the same picture at each size there is), sizes (by default
    its own width in CSS pixels, so it is shown at its width and a high-density screen takes
    a larger one), width and height. The original (no `variant`, or a field without
    variants) gets src, and width and height when the row holds them. An empty file gives
    ''. Other attributes follow, '_' written '-' (aria_label, data_id); None or False leave
    one out, True writes it bare.
    """
    if not file:
        return SafeString("")
    if not hasattr(file, "url") or not hasattr(file, "name"):
        raise TypeError(f"image expects a file field's value (such as event.logo), not {file!r}.")
    declared = declared_variants(file)
    if variant is None or not declared:
        chosen, choices = original(file), []
    elif variant not in declared:
        where = f"{file.field.model.__name__}.{file.field.name}"
        raise KeyError(f"{where} has no variant {variant!r} (declared: {', '.join(sorted(declared))}).")
    else:
        pictures = variants(file)
        chosen = pictures[variant]
        if chosen.ready:
            choices = alternatives(chosen, [picture for picture in pictures.values() if picture.ready])
        else:
            # Until a worker stores it: a stored stand-in laid out at the variant's size, and
            # no srcset (it would tell the browser the stand-in is as wide as the variant).
            stand_in = file.variant(variant)
            if chosen.spec is not None and chosen.spec.crop and "style" not in attributes:
                # The stand-in may have another shape: cut to the variant's, as it will be.
                width, height = stand_in.width, stand_in.height
                attributes["style"] = f"object-fit: cover; aspect-ratio: {width} / {height}"
            chosen, choices = replace(chosen, url=stand_in.url), []
    tag: dict[str, Any] = {"src": chosen.url}
    if choices:
        tag["srcset"] = srcset(choices)
        tag["sizes"] = sizes or f"{chosen.width}px"
    tag |= {"width": chosen.width, "height": chosen.height, "alt": alt, "loading": loading}
    tag["decoding"] = decoding
    for name, value in attributes.items():
        name = name.replace("_", "-")
        if not _ATTRIBUTE_NAME.fullmatch(name) or name in COMPUTED_ATTRIBUTES or name in tag:
            raise ValueError(f"image cannot take the attribute {name!r}: {_why_not(name)}.")
        tag[name] = value
    return format_html("<img{}>", attributes_html(tag))


def _why_not(name: str) -> str:
    if name in COMPUTED_ATTRIBUTES:
        return "it is computed from the file"
    if not _ATTRIBUTE_NAME.fullmatch(name):
        return "an attribute name is lowercase letters, digits and '-'"
    return "it is given twice"


def attributes_html(attributes: Mapping[str, Any]) -> SafeString:
    """' name="value"' for each attribute, in order and escaped; True bare, None and False left out."""
    return format_html_join(
        "",
        "{}",
        (
            (format_html(" {}", name) if value is True else format_html(' {}="{}"', name, value),)
            for name, value in attributes.items()
            if value is not None and value is not False
        ),
    )
