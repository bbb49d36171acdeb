"""{% image %}: an <img> with src, srcset, sizes, width and height from a field's variants, made
from the row alone; every link it gives loads the picture it says, at the size it says."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, models
from django.template import Context, Template
from django.test.utils import isolate_apps

from keyed_storage import KeyedStorage, key_template
from keyed_storage.images.markup import image_html
from keyed_storage.images.variants import Variant

from ..helpers import fetch
from ..image_helpers import encode, halves, image_model
from ..site_helpers import img_tags, pixel_size, srcset_entries, storage_untouched

pytestmark = pytest.mark.django_db(transaction=True)

VARIANTS = {
    "thumb": Variant(160, 160, crop=True),
    "thumb_2x": Variant(320, 320, crop=True),
    "small": Variant(200, None),
    "card": Variant(640, 640),
    "wide": Variant(800, 200, crop=True),
}


def render(source: str, **context: object) -> str:
    return Template("{% load keyed_storage %}" + source).render(Context(context))


def one_img(html: str) -> dict[str, str | None]:
    [tag] = img_tags(html)
    return tag


def stored(name: str) -> bytes:
    with KeyedStorage().open(name) as file:
        return file.read()


@pytest.fixture
def row(mode):
    """A 1200 x 900 picture with fitted and cropped variants and its size in the row."""
    with image_model(VARIANTS) as Picture:
        yield Picture.objects.create(image=SimpleUploadedFile("photo.jpg", encode(halves(1200, 900), "JPEG")))


def test_a_variant_gets_src_srcset_sizes_width_and_height_and_each_link_loads_what_it_says(row):
    tag = one_img(render('{% image row.image "small" alt="A photo" %}', row=row))
    small = row.image.variant("small")
    assert tag["src"] == small.url
    assert (tag["width"], tag["height"]) == ("200", "150")
    # Only the whole picture at other sizes is offered, narrowest first: not the crops.
    offered = srcset_entries(tag["srcset"])
    assert offered == [(small.url, 200), (row.image.variant("card").url, 640)]
    assert tag["sizes"] == "200px"  # shown at its own width; a dense screen takes the 640
    assert (tag["alt"], tag["loading"], tag["decoding"]) == ("A photo", "lazy", "async")
    for url, width in offered:
        data = fetch(url)
        variant = next(v for v in row.image.variants().values() if v.url == url)
        assert data == stored(variant.name)
        assert pixel_size(data)[0] == width
    assert pixel_size(fetch(tag["src"])) == (200, 150)


def test_a_crop_is_offered_with_the_crops_of_its_shape(row):
    tag = one_img(render('{% image row.image "thumb" %}', row=row))
    assert (tag["width"], tag["height"]) == ("160", "160")
    assert srcset_entries(tag["srcset"]) == [
        (row.image.variant("thumb").url, 160),
        (row.image.variant("thumb_2x").url, 320),
    ]
    for url, width in srcset_entries(tag["srcset"]):
        assert pixel_size(fetch(url)) == (width, width)
    wide = one_img(render('{% image row.image "wide" %}', row=row))
    assert srcset_entries(wide["srcset"]) == [(row.image.variant("wide").url, 800)]


def test_a_crop_of_the_originals_shape_counts_as_the_whole_picture(mode):
    variants = {"small": Variant(400, None), "fourbythree": Variant(800, 600, crop=True)}
    with image_model(variants) as Picture:
        row = Picture.objects.create(image=SimpleUploadedFile("p.png", encode(halves(1200, 900), "PNG")))
        tag = one_img(image_html(row.image, "small"))
        assert [width for _, width in srcset_entries(tag["srcset"])] == [400, 800]


def test_sizes_and_other_attributes_are_passed_on_escaped(row):
    html = render(
        '{% image row.image "card" alt=title sizes="(min-width: 800px) 640px, 100vw" class="card-img" '
        'loading="eager" fetchpriority="high" aria_hidden="true" data_row=row.pk hidden=True title=None %}',
        row=row,
        title='"><script>alert(1)</script>',
    )
    assert "<script>" not in html
    tag = one_img(html)
    assert tag["alt"] == '"><script>alert(1)</script>'  # escaped in the HTML, intact for the reader
    assert tag["sizes"] == "(min-width: 800px) 640px, 100vw"
    assert (tag["class"], tag["loading"], tag["fetchpriority"]) == ("card-img", "eager", "high")
    assert (tag["aria-hidden"], tag["data-row"]) == ("true", str(row.pk))
    assert "hidden" in tag and tag["hidden"] is None  # a bare attribute
    assert "title" not in tag
    assert html.startswith("<img src=")  # the computed attributes first, in a fixed order
    assert list(tag)[:8] == ["src", "srcset", "sizes", "width", "height", "alt", "loading", "decoding"]


def test_rendering_reads_nothing_from_storage(row):
    for size in ((600, 400), (300, 500)):
        type(row).objects.create(image=SimpleUploadedFile("p.png", encode(halves(*size), "PNG")))
    rows = list(type(row).objects.all())
    with storage_untouched():
        html = render(
            '{% for row in rows %}{% image row.image "thumb" %}{% image row.image "card" %}'
            "{% image row.image %}{% endfor %}",
            rows=rows,
        )
    assert len(img_tags(html)) == 9


def test_without_a_name_the_original_with_its_size_from_the_row(row):
    tag = one_img(render("{% image row.image alt='Original' %}", row=row))
    assert tag["src"] == row.image.url
    assert (tag["width"], tag["height"]) == ("1200", "900")
    assert "srcset" not in tag and "sizes" not in tag
    assert pixel_size(fetch(tag["src"])) == (1200, 900)


def test_an_empty_field_renders_nothing(mode):
    with image_model(VARIANTS) as Picture:
        row = Picture.objects.create()
        assert render('{% image row.image "thumb" %}|{% image missing "thumb" %}', row=row) == "|"
        assert image_html(None) == ""


def test_a_value_that_is_not_a_file_is_a_clear_error():
    with pytest.raises(TypeError, match=r"a file field's value \(such as event.logo\)"):
        render('{% image url "thumb" %}', url="https://example.org/logo.png")


def test_an_unknown_variant_names_those_declared(row):
    with pytest.raises(
        KeyError, match=r"has no variant 'huge' \(declared: card, small, thumb, thumb_2x, wide\)"
    ):
        render('{% image row.image "huge" %}', row=row)


@pytest.mark.parametrize("name", ["src", "srcset", "width", "height"])
def test_the_computed_attributes_cannot_be_given(row, name):
    with pytest.raises(ValueError, match="computed from the file"):
        render(f'{{% image row.image "thumb" {name}="x" %}}', row=row)


def test_an_attribute_name_that_would_break_the_tag_is_refused(row):
    with pytest.raises(ValueError, match="lowercase letters"):
        image_html(row.image, "thumb", **{'x" onload="alert(1)': "y"})


def test_sizes_unknown_to_the_row_give_no_width_height_or_srcset_for_a_fitted_variant(mode):
    # Without width_field/height_field (check W004) a fitted variant's size is unknown
    # without reading the original: the tag leaves the size out rather than read it.
    with image_model(VARIANTS, width_field=None, height_field=None) as Picture:
        row = Picture.objects.create(image=SimpleUploadedFile("p.png", encode(halves(1200, 900), "PNG")))
        row = Picture.objects.get()
        with storage_untouched():
            small = one_img(render('{% image row.image "small" %}', row=row))
            thumb = one_img(render('{% image row.image "thumb" %}', row=row))
        assert small["src"] == row.image.variant("small").url
        assert not {"width", "height", "srcset", "sizes"} & set(small)
        # A crop's size is its spec, known without the original.
        assert (thumb["width"], thumb["height"]) == ("160", "160")
        assert [width for _, width in srcset_entries(thumb["srcset"])] == [160, 320]


def test_a_small_original_gives_each_width_once(mode):
    with image_model({"small": Variant(400, None), "card": Variant(640, None)}) as Picture:
        row = Picture.objects.create(image=SimpleUploadedFile("p.png", encode(halves(300, 200), "PNG")))
        tag = one_img(image_html(row.image, "card"))
        # Variants are never enlarged: both are 300 x 200, and the one named is offered.
        assert srcset_entries(tag["srcset"]) == [(row.image.variant("card").url, 300)]
        assert (tag["width"], tag["height"]) == ("300", "200")


@contextmanager
def plain_image_model() -> Iterator[type[models.Model]]:
    """Django's own ImageField (no variants) with width_field and height_field."""
    with isolate_apps("events"):

        class Plain(models.Model):
            image = models.ImageField(
                storage=KeyedStorage(),
                upload_to=key_template("plain/{id}/image"),
                width_field="width",
                height_field="height",
                max_length=255,
            )
            width = models.PositiveIntegerField(null=True)
            height = models.PositiveIntegerField(null=True)

            class Meta:
                app_label = "events"

        with connection.schema_editor() as editor:
            editor.create_model(Plain)
        try:
            yield Plain
        finally:
            with connection.schema_editor() as editor:
                editor.delete_model(Plain)


def test_a_field_without_variants_renders_its_original_whatever_the_name(mode):
    with plain_image_model() as Plain:
        row = Plain.objects.create(image=SimpleUploadedFile("p.png", encode(halves(90, 60), "PNG")))
        row = Plain.objects.get()
        with storage_untouched():
            html = render('{% image row.image "thumb" alt="Plain" %}', row=row)
        tag = one_img(html)
        assert tag["src"] == row.image.url
        assert (tag["width"], tag["height"]) == ("90", "60")
        assert "srcset" not in tag
        assert pixel_size(fetch(tag["src"])) == (90, 60)
    with image_model({}) as Picture:
        row = Picture.objects.create(image=SimpleUploadedFile("p.png", encode(halves(50, 40), "PNG")))
        tag = one_img(image_html(row.image, "thumb"))
        assert (tag["src"], tag["width"], tag["height"]) == (row.image.url, "50", "40")
