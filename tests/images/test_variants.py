"""Image variants: made when the file is saved, served by string-built links, correct pictures,
no metadata, removed with their original, and bombs refused."""

from __future__ import annotations

import io
import os

import pytest
import requests
from django import forms
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from PIL import Image, ImageOps

from keyed_storage import KeyedStorage
from keyed_storage.fields import KeyedImageField
from keyed_storage.images.rendering import render
from keyed_storage.images.variants import ImageRefused, Variant, variant_name

from ..helpers import fetch
from ..image_helpers import (
    ADOBE_LIKE,
    encode,
    halves,
    image_model,
    jpeg_with_orientation,
    rgb_profile,
    srgb_of,
)
from ..site_helpers import storage_untouched

pytestmark = pytest.mark.django_db(transaction=True)


def picture(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def gone(url: str) -> bool:
    return requests.get(url, timeout=10).status_code in (403, 404)


def test_every_variant_is_stored_when_the_file_is_saved_and_serves_its_declared_size(mode):
    with image_model() as Picture:
        row = Picture.objects.create(
            image=SimpleUploadedFile("photo.jpg", encode(halves(2000, 1500), "JPEG"))
        )
        assert (row.width, row.height) == (2000, 1500)
        expected = {"thumb": (160, 160), "card": (640, 360), "hero": (1600, 1200)}
        for name, variant in row.image.variants().items():
            served = picture(fetch(variant.url))
            assert served.format == "WEBP"
            assert served.size == (variant.width, variant.height) == expected[name]
            assert variant.name.startswith(row.image.name + "~")


def test_variant_links_and_sizes_need_no_storage_request(mode):
    with image_model() as Picture:
        Picture.objects.create(image=SimpleUploadedFile("photo.png", encode(halves(800, 600), "PNG")))
        rows = list(Picture.objects.all())
        with storage_untouched():
            for row in rows:
                variant = row.image.variant("hero")
                assert variant.url.startswith("http") and (variant.width, variant.height) == (800, 600)


def test_a_small_picture_is_never_enlarged_except_to_fill_a_crop(mode):
    with image_model() as Picture:
        row = Picture.objects.create(image=SimpleUploadedFile("s.png", encode(halves(100, 50), "PNG")))
        assert picture(fetch(row.image.variant("hero").url)).size == (100, 50)
        assert picture(fetch(row.image.variant("thumb").url)).size == (160, 160)


def test_the_exif_orientation_is_applied_and_sizes_are_as_shown(mode):
    # Stored 300x200 with orientation 6 (turn 90° clockwise to show): shown 200x300, the
    # stored left half (red) on top.
    with image_model({"half": Variant(100, None)}) as Picture:
        row = Picture.objects.create(image=SimpleUploadedFile("p.jpg", jpeg_with_orientation(300, 200, 6)))
        assert (row.width, row.height) == (200, 300)
        variant = row.image.variant("half")
        assert (variant.width, variant.height) == (100, 150)
        shown = picture(fetch(variant.url)).convert("RGB")
        assert shown.size == (100, 150)
        top, bottom = shown.getpixel((50, 10)), shown.getpixel((50, 140))
        assert top[0] > 200 and top[2] < 60, top  # red
        assert bottom[2] > 200 and bottom[0] < 60, bottom  # blue


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_gives_the_size_pillow_shows(orientation):
    data = jpeg_with_orientation(120, 80, orientation)
    shown = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    output = render(io.BytesIO(data), {"v": Variant(60, None)})["v"]
    expected = Variant(60, None).size_for(*shown.size)
    assert (output.width, output.height) == expected == picture(output.data).size


def test_a_wide_gamut_profile_is_converted_to_srgb():
    profile = rgb_profile(ADOBE_LIKE)
    data = encode(Image.new("RGB", (40, 40), (128, 64, 64)), "PNG", icc_profile=profile)
    output = picture(render(io.BytesIO(data), {"v": Variant(20, 20, format="png")})["v"].data)
    expected = srgb_of((128, 64, 64), profile)
    assert expected != (128, 64, 64)
    assert all(
        abs(a - b) <= 2 for a, b in zip(output.convert("RGB").getpixel((10, 10)), expected, strict=True)
    )
    assert "icc_profile" not in output.info


def test_transparency_is_kept_and_palette_images_are_converted():
    palette = Image.new("P", (40, 40), 0)
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.paste(1, (20, 0, 40, 40))
    data = encode(palette, "PNG", transparency=1)
    output = picture(render(io.BytesIO(data), {"v": Variant(20, 20)})["v"].data)
    assert output.mode == "RGBA"
    assert output.getpixel((2, 10))[3] == 255 and output.getpixel((17, 10))[3] == 0


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    image = Image.new("I;16", (40, 40), 0)
    image.paste(Image.new("I;16", (20, 40), 32768), (20, 0))
    output = picture(render(io.BytesIO(encode(image, "PNG")), {"v": Variant(20, 20, format="png")})["v"].data)
    left, right = output.convert("L").getpixel((2, 10)), output.convert("L").getpixel((17, 10))
    assert left < 10 and 110 < right < 145  # 32768 of 65535 is mid-grey, not white


def test_cmyk_jpegs_come_out_in_rgb():
    image = Image.new("CMYK", (40, 40), (0, 0, 0, 0))  # white
    image.paste(Image.new("CMYK", (20, 40), (0, 0, 0, 255)), (20, 0))  # black
    output = picture(render(io.BytesIO(encode(image, "JPEG")), {"v": Variant(20, 20)})["v"].data).convert(
        "RGB"
    )
    assert min(output.getpixel((2, 10))) > 230 and max(output.getpixel((17, 10))) < 30


@pytest.mark.parametrize("format", ["GIF", "WEBP"])
def test_an_animation_gives_its_first_frame_as_a_still(format):
    frames = [Image.new("RGB", (40, 40), color) for color in ("red", "blue", "green")]
    data = encode(frames[0], format, save_all=True, append_images=frames[1:], duration=100, loop=0)
    output = picture(render(io.BytesIO(data), {"v": Variant(20, 20)})["v"].data)
    assert not getattr(output, "is_animated", False)
    red, green, blue = output.convert("RGB").getpixel((10, 10))
    assert red > 200 and green < 60 and blue < 60


def test_variants_carry_no_metadata_at_all():
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x010F] = "PhoneMaker"  # Make
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 29.0)  # GPSLatitude
    data = encode(halves(200, 100), "JPEG", exif=exif.tobytes(), icc_profile=rgb_profile(ADOBE_LIKE))
    for format in ("webp", "jpeg", "png"):
        output = render(io.BytesIO(data), {"v": Variant(100, None, format=format)})["v"]
        image = picture(output.data)
        assert not image.getexif() and "icc_profile" not in image.info and "xmp" not in image.info
        assert b"PhoneMaker" not in output.data


@pytest.mark.parametrize(("format", "content_type"), [("jpeg", "image/jpeg"), ("png", "image/png")])
def test_format_and_quality_are_configurable(mode, format, content_type):
    with image_model({"v": Variant(50, 50, format=format, quality=60)}) as Picture:
        row = Picture.objects.create(image=SimpleUploadedFile("a.png", encode(halves(100, 100), "PNG")))
        variant = row.image.variant("v")
        assert variant.name.endswith(f"v-50x50-q60.{'jpg' if format == 'jpeg' else 'png'}")
        response = requests.get(variant.url, timeout=10)
        assert response.headers["Content-Type"] == content_type
        assert picture(response.content).size == (50, 50)


def test_a_changed_spec_gets_a_new_name_so_no_cache_serves_the_old_file():
    name = "events/7/logo/0123456789abcdef0123456789abcdef/logo.png"
    names = {
        variant_name(name, "card", spec)
        for spec in (
            Variant(640, 360),
            Variant(640, 360, crop=True),
            Variant(640, 360, quality=90),
            Variant(640, None),
            Variant(640, 360, format="jpeg"),
        )
    }
    assert len(names) == 5


# Removed with their original ------------------------------------------------------------


def test_replacing_and_deleting_remove_the_variants_with_their_original(mode):
    with image_model() as Picture:
        row = Picture.objects.create(image=SimpleUploadedFile("a.png", encode(halves(400, 300), "PNG")))
        old = [row.image.url, *(v.url for v in row.image.variants().values())]
        with transaction.atomic():
            row.image = SimpleUploadedFile("b.png", encode(halves(400, 300, "green", "white"), "PNG"))
            row.save()
            assert all(fetch(url) for url in old), "deleted before the commit"
        assert all(gone(url) for url in old)
        new = [row.image.url, *(v.url for v in row.image.variants().values())]
        assert all(fetch(url) for url in new)
        row.delete()
        assert all(gone(url) for url in new)


def test_a_rolled_back_save_removes_its_variants_too(mode):
    with image_model() as Picture:
        row = Picture.objects.create(image=SimpleUploadedFile("a.png", encode(halves(400, 300), "PNG")))
        with pytest.raises(RuntimeError), transaction.atomic():
            row.image = SimpleUploadedFile("b.png", encode(halves(400, 300), "PNG"))
            row.save()
            new = [row.image.url, *(v.url for v in row.image.variants().values())]
            raise RuntimeError
        assert all(gone(url) for url in new)
        kept = Picture.objects.get(pk=row.pk)
        assert all(fetch(v.url) for v in kept.image.variants().values())


def test_delete_prefix_and_the_key_sweep_take_variants_along(mode):
    with image_model() as Picture:
        row = Picture.objects.create(image=SimpleUploadedFile("a.png", encode(halves(400, 300), "PNG")))
        storage = KeyedStorage()
        key = row.image.name.rsplit("/", 2)[0]
        assert len(storage.earlier_objects(key)) == 4  # the original and three variants
        assert len(storage.delete_prefix(f"pictures/{row.pk}")) == 4
        assert storage.earlier_objects(key) == []


def test_a_new_row_gets_its_id_before_its_variants_are_named(mode):
    with image_model() as Picture:
        row = Picture.objects.create(image=SimpleUploadedFile("a.png", encode(halves(400, 300), "PNG")))
        assert row.image.name.startswith(f"pictures/{row.pk}/image/")
        assert fetch(row.image.variant("thumb").url)


# Bombs and broken files ---------------------------------------------------------------------


def bomb() -> bytes:
    # 12000 x 12000 = 144 million pixels in a few kilobytes of PNG.
    return encode(Image.new("1", (12000, 12000)), "PNG")


@pytest.mark.timeout(60)
def test_a_decompression_bomb_is_refused_before_decoding_and_stores_nothing(local, settings):
    data = bomb()
    assert len(data) < 100_000
    with image_model() as Picture:
        with pytest.raises(ImageRefused, match="144,000,000 pixels"):
            Picture.objects.create(image=SimpleUploadedFile("bomb.png", data))
        assert not Picture.objects.exists()
    assert not os.path.exists(settings.MEDIA_ROOT) or not any(f for _, _, f in os.walk(settings.MEDIA_ROOT))


@pytest.mark.timeout(60)
def test_a_bomb_is_a_form_error_in_a_model_form(local):
    with image_model() as Picture:
        form_class = forms.modelform_factory(Picture, fields=["image"])
        form = form_class(files={"image": SimpleUploadedFile("bomb.png", bomb(), "image/png")})
        assert not form.is_valid()
        assert "more than the 50,000,000 accepted" in form.errors["image"][0]


def test_the_pixel_limit_is_configurable(mode):
    with image_model(max_pixels=100 * 100) as Picture:
        with pytest.raises(ImageRefused):
            Picture.objects.create(image=SimpleUploadedFile("a.png", encode(halves(101, 100), "PNG")))
        assert Picture.objects.create(image=SimpleUploadedFile("b.png", encode(halves(100, 100), "PNG"))).pk


def test_a_broken_image_stores_nothing(mode):
    with image_model() as Picture:
        with pytest.raises(ImageRefused, match="not an image"):
            Picture.objects.create(image=SimpleUploadedFile("a.png", b"\x89PNG\r\n\x1a\n broken"))
        assert not Picture.objects.exists()


# The field --------------------------------------------------------------------------------


def test_the_field_deconstructs_without_the_environment():
    field = KeyedImageField(upload_to="x/", variants={"thumb": Variant(160, 160, crop=True)})
    _, path, args, kwargs = field.deconstruct()
    assert path == "keyed_storage.fields.KeyedImageField" and args == []
    assert kwargs == {"upload_to": "x/", "variants": {"thumb": Variant(160, 160, crop=True)}}
    assert Variant(160, 160, crop=True).deconstruct() == (
        "keyed_storage.images.Variant",
        (160, 160),
        {"crop": True},
    )


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((0, 10), {}),
        ((None, None), {}),
        ((10, None), {"crop": True}),
        ((10, 10), {"format": "bmp"}),
        ((10, 10), {"quality": 0}),
    ],
)
def test_bad_specs_are_refused_with_the_reason(args, kwargs):
    with pytest.raises(ValueError, match="Variant"):
        Variant(*args, **kwargs)


def test_another_storage_is_refused():
    from django.core.files.storage import FileSystemStorage

    with pytest.raises(TypeError, match="KeyedStorage"):
        KeyedImageField(storage=FileSystemStorage())


def test_an_unknown_variant_name_says_which_exist(mode):
    with image_model() as Picture:
        row = Picture.objects.create(image=SimpleUploadedFile("a.png", encode(halves(40, 30), "PNG")))
        with pytest.raises(KeyError, match="card, hero, thumb"):
            row.image.variant("huge")
