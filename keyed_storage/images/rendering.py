"""Making variants with Pillow: decoding within a pixel budget, orientation, colour, encoding."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from django.utils.translation import gettext_lazy as _

from .variants import DEFAULT_MAX_PIXELS, ImageRefused, Variant

# EXIF orientations 5 to 8 turn the picture a quarter: the stored width is the shown height.
_TRANSPOSED = {5, 6, 7, 8}


@dataclass(frozen=True, slots=True)
class Rendered:
    data: bytes
    width: int
    height: int
    content_type: str


def displayed_size(source: IO[bytes], *, max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) of the picture as shown, EXIF orientation applied; reads the header only.
    ImageRefused if it is not a picture, or has more than `max_pixels` pixels."""
    image = open_image(source, max_pixels=max_pixels)
    width, height = image.size
    return (height, width) if _orientation(image) in _TRANSPOSED else (width, height)


def render(
    source: IO[bytes], variants: Mapping[str, Variant], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> dict[str, Rendered]:
    """Every variant of the image in `source`, encoded; ImageRefused if it cannot or may not be.

    The image is decoded once (the first frame of an animation), at the smallest scale the
    largest variant allows (JPEG's draft mode), turned upright by its EXIF orientation and
    converted to sRGB; each variant is resized from that with Lanczos and saved without
    metadata.
    """
    return render_sized(source, variants, max_pixels=max_pixels)[0]


def render_sized(
    source: IO[bytes], variants: Mapping[str, Variant], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[dict[str, Rendered], tuple[int, int]]:
    """render(), and the size of the picture as shown (what displayed_size() tells)."""
    from PIL import Image, ImageOps

    image = open_image(source, max_pixels=max_pixels)
    if image.format != "JPEG":
        # Reading the EXIF of a PNG or WebP decodes the picture (an eXIf chunk may follow the
        # pixels), and _orientation() takes any error as "no orientation": decode it here,
        # where a damaged picture is refused, not half-read.
        with decoding(max_pixels):
            image.load()
    orientation = _orientation(image)
    turned = orientation in _TRANSPOSED
    shown_width, shown_height = (image.height, image.width) if turned else image.size
    targets = {name: spec.size_for(shown_width, shown_height) for name, spec in variants.items()}
    # How each orientation is undone, as ImageOps.exif_transpose() does; that one reads the
    # EXIF again and would fail where _orientation() fell back to "as stored".
    upright_by = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }
    with decoding(max_pixels):
        if image.format == "JPEG" and targets:
            # Decode at 1/2, 1/4 or 1/8 scale when even the largest variant is that small: a
            # 12-megapixel photo's thumbnails then cost a fraction of a full decode.
            largest = (max(w for w, _ in targets.values()), max(h for _, h in targets.values()))
            image.draft(image.mode, (largest[1], largest[0]) if turned else largest)
        image.load()
        upright = image.transpose(upright_by[orientation]) if orientation in upright_by else image
        picture = _to_srgb(upright)
    rendered = {}
    for name, spec in variants.items():
        width, height = targets[name]
        with decoding(max_pixels):
            if spec.crop:
                resized = ImageOps.fit(picture, (width, height), Image.Resampling.LANCZOS)
            else:
                resized = picture.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
        # Outside decoding(): the picture was read; failing to encode it is not the file's fault.
        rendered[name] = Rendered(_encode(resized, spec), width, height, spec.content_type)
    return rendered, (shown_width, shown_height)


@contextmanager
def decoding(max_pixels: int | None = None) -> Iterator[None]:
    """Where Pillow reads uploaded bytes: whatever it raises there is a refusal (ImageRefused).

    Pillow raises many types on damaged or hostile files (OSError, SyntaxError, ValueError,
    struct.error, EOFError, IndexError, TypeError, ZeroDivisionError, MemoryError when a
    header asks for more memory than there is); each means "not an image we can use", which
    is a form error and never a server error.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns, then raises at twice its limit; open_image's comes
            # first and says how many pixels there are.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    except ImageRefused:
        raise
    except Image.DecompressionBombError as error:
        raise ImageRefused(
            _("This image has more than %(max)s pixels."),
            code="image_pixels",
            params={"max": f"{max_pixels or Image.MAX_IMAGE_PIXELS:,}"},
        ) from error
    except Exception as error:
        raise _unreadable(error) from error


def open_image(source: IO[bytes], *, max_pixels: int | None) -> Any:
    """The image in `source`, opened lazily (the header read, no pixels decoded); ImageRefused
    if it is not an image or has more than `max_pixels` pixels."""
    from PIL import Image

    source.seek(0)
    with decoding(max_pixels):
        image = Image.open(source)
        pixels = image.width * image.height
        if max_pixels is not None and pixels > max_pixels:
            raise ImageRefused(
                _(
                    "This image has %(pixels)s pixels (%(width)d x %(height)d), more than the "
                    "%(max)s accepted."
                ),
                code="image_pixels",
                params={
                    "pixels": f"{pixels:,}",
                    "width": image.width,
                    "height": image.height,
                    "max": f"{max_pixels:,}",
                },
            )
        if getattr(image, "is_animated", False):
            image.seek(0)  # variants show the first frame: a still, as thumbnails and cards should
    return image


def _unreadable(error: BaseException) -> ImageRefused:
    return ImageRefused(
        _("This file is not an image that can be read (%(error)s)."),
        code="invalid_image",
        params={"error": str(error) or type(error).__name__},
    )


def _orientation(image: Any) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:  # whatever Pillow raises on damaged EXIF (see decoding())
        return 1  # unreadable EXIF: shown as stored, by render() as by displayed_size()


def _to_srgb(image: Any) -> Any:
    """RGB or RGBA in sRGB: palettes, greyscale, 16-bit and CMYK converted, transparency kept."""
    from PIL import ImageCms

    icc = image.info.get("icc_profile")
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit integer) greyscale, as in some PNGs: scale to 8 bits, not clip.
        image = image.point(lambda value: value / 256).convert("L")
        mode = "L"
    elif mode == "F":
        image = image.convert("L")
        mode = "L"
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    target = "RGBA" if has_alpha else "RGB"
    if icc and mode in ("RGB", "RGBA", "CMYK", "L"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if "srgb" not in (ImageCms.getProfileDescription(source) or "").lower():
                working = image if mode in ("RGB", "RGBA", "CMYK", "L") else image.convert("RGB")
                converted = ImageCms.profileToProfile(
                    working,
                    source,
                    ImageCms.createProfile("sRGB"),
                    outputMode="RGBA" if working.mode == "RGBA" else "RGB",
                )
                if converted is not None:
                    image = converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a profile lcms cannot use: the colours are taken as sRGB
    image = image.convert(target) if image.mode != target else image
    image.info = {}  # nothing of the original's metadata (EXIF, XMP, ICC) reaches a variant
    return image


def _encode(image: Any, spec: Variant) -> bytes:
    buffer = io.BytesIO()
    if spec.format == "jpeg":
        if image.mode == "RGBA":
            from PIL import Image

            flat = Image.new("RGB", image.size, "white")
            flat.paste(image, mask=image.getchannel("A"))
            image = flat
        image.save(buffer, "JPEG", quality=spec.quality, optimize=True, progressive=True)
    elif spec.format == "png":
        image.save(buffer, "PNG", optimize=False, compress_level=6)
    elif spec.format == "avif":
        image.save(buffer, "AVIF", quality=spec.quality)
    else:
        image.save(buffer, "WEBP", quality=spec.quality, method=4)
    return buffer.getvalue()
