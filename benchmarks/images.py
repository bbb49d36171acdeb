"""The image rows of `make bench`: making variants against Pillow alone, saving a 12-megapixel
photo with three variants against a plain ImageField, variant links against url(), and the
bytes Chromium downloads for the demo's pages with variants against their originals.

    python benchmarks/bench.py --only images
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote, unquote, urlsplit
from urllib.request import urlopen

from benchmarks.common import free_port, row, us, use_local, use_s3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = os.environ.get("KEYED_STORAGE_CHROMIUM", "/usr/bin/chromium")
# The specs of the Speaker example of docs/howto/images.rst: a thumbnail, a card and a hero.
SPECS = {"thumb": (160, 160, True), "card": (640, 360, True), "hero": (1600, None, False)}
QUALITY = 80


def variants():
    from keyed_storage.images.variants import Variant

    return {name: Variant(w, h, crop=crop, quality=QUALITY) for name, (w, h, crop) in SPECS.items()}


def photo(width: int = 4000, height: int = 3000, orientation: int = 6) -> bytes:
    """A phone-like 12-megapixel JPEG (quality 90, EXIF orientation): smooth colour gradients
    with texture at two scales, so it compresses as photographs do (about 5 MB), not as a flat
    test card does."""
    from PIL import Image, ImageChops

    ramp, radial = Image.linear_gradient("L"), Image.radial_gradient("L")
    size, bicubic = (width, height), Image.Resampling.BICUBIC
    base = Image.merge(
        "RGB",
        (ramp.rotate(90).resize(size, bicubic), ramp.resize(size, bicubic), radial.resize(size, bicubic)),
    )
    coarse = Image.effect_noise((width // 16, height // 16), 30).resize(size, bicubic)
    texture = ImageChops.add(coarse, Image.effect_noise(size, 12), scale=1.0, offset=-128)
    picture = ImageChops.add(base, Image.merge("RGB", (texture,) * 3), scale=1.0, offset=-128)
    exif = Image.Exif()
    exif[0x0112] = orientation  # stored landscape, shown portrait, as phones do
    exif[0x010F] = "BenchCam"
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def pillow_alone(data: bytes, names: tuple[str, ...] | None = None) -> dict[str, bytes]:
    """What a developer writes for the same output with Pillow alone: open, turn upright,
    fit or crop with Lanczos, save WebP at the same quality (no draft mode, no colour
    management, no transparency handling); only the variants `names`, when given."""
    from PIL import Image, ImageOps

    out = {}
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
        for name, (width, height, crop) in SPECS.items():
            if names is not None and name not in names:
                continue
            if crop:
                resized = ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)
            else:
                resized = image.copy()
                resized.thumbnail((width or 100_000, height or 100_000), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            resized.save(buffer, "WEBP", quality=QUALITY)
            out[name] = buffer.getvalue()
    return out


def median_seconds(function: Callable[[], object], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def interleaved(ours: Callable[[], object], theirs: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Median seconds of each side, the rounds interleaved so both see the same machine load."""
    mine, other = [], []
    for _ in range(rounds):
        for samples, function in ((mine, ours), (other, theirs)):
            start = time.perf_counter()
            function()
            samples.append(time.perf_counter() - start)
    return statistics.median(mine), statistics.median(other)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms"


def time_ratio(ours: float, theirs: float) -> str:
    """Both ways, so neither reading hides the other."""
    if ours <= theirs:
        return f"{ours / theirs:.2f}x its time ({theirs / ours:.2f}x faster)"
    return f"{ours / theirs:.2f}x its time ({ours / theirs:.2f}x slower)"


def per_call_pair(
    ours: Callable[[], object], theirs: Callable[[], object], calls: int = 2000
) -> tuple[float, float]:
    """Median seconds per call of each, over 15 batches of `calls` calls, the batches
    interleaved so a busy moment of the machine falls on both."""
    ours(), theirs()
    mine, other = [], []
    for _ in range(15):
        for samples, function in ((mine, ours), (other, theirs)):
            start = time.perf_counter()
            for _ in range(calls):
                function()
            samples.append((time.perf_counter() - start) / calls)
    return statistics.median(mine), statistics.median(other)


# Making variants -----------------------------------------------------------------------------


def bench_render(data: bytes, rounds: int) -> None:
    from PIL import Image

    from keyed_storage.images.rendering import render

    specs, png = variants(), _png(data)
    thumb = {"thumb": specs["thumb"]}
    ours = render(io.BytesIO(data), specs)
    theirs = pillow_alone(data)
    for name, output in ours.items():  # the same output: same sizes, same format
        assert Image.open(io.BytesIO(output.data)).size == Image.open(io.BytesIO(theirs[name])).size, name
    for label, source, chosen, alone, times in [
        ("3 variants of a 12 MP JPEG (render)", data, specs, pillow_alone, rounds),
        ("1 thumbnail of a 12 MP JPEG (render)", data, thumb, _pillow_thumb, rounds),
        ("3 variants of a 12 MP PNG (no draft mode)", png, specs, pillow_alone, max(2, rounds // 2)),
    ]:
        mine, other = interleaved(
            lambda source=source, chosen=chosen: render(io.BytesIO(source), chosen),
            lambda source=source, alone=alone: alone(source),
            times,
        )
        row(label, ms(mine), ms(other), "Pillow alone, same output", time_ratio(mine, other))


def _pillow_thumb(data: bytes) -> bytes:
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
        buffer = io.BytesIO()
        ImageOps.fit(image, (160, 160), Image.Resampling.LANCZOS).save(buffer, "WEBP", quality=QUALITY)
        return buffer.getvalue()


def _png(data: bytes) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    with Image.open(io.BytesIO(data)) as image:
        image.save(buffer, "PNG", compress_level=1, exif=image.getexif().tobytes())
    return buffer.getvalue()


# Saving a photo with its variants ----------------------------------------------------------


def bench_models():
    """Two models, their tables in the in-memory database: a KeyedImageField with three variants,
    and Django's ImageField on the same KeyedStorage, both with width_field/height_field."""
    from django.db import connection, models

    from keyed_storage import KeyedStorage, key_template
    from keyed_storage.fields import KeyedImageField

    class WithVariants(models.Model):
        image = KeyedImageField(
            upload_to=key_template("bench/with/{id}/photo"),
            variants=variants(),
            width_field="width",
            height_field="height",
        )
        width = models.PositiveIntegerField(null=True)
        height = models.PositiveIntegerField(null=True)

        class Meta:
            app_label = "keyed_storage"

    class Plain(models.Model):
        image = models.ImageField(
            storage=KeyedStorage(),
            upload_to=key_template("bench/plain/{id}/photo"),
            width_field="width",
            height_field="height",
            max_length=255,
        )
        width = models.PositiveIntegerField(null=True)
        height = models.PositiveIntegerField(null=True)

        class Meta:
            app_label = "keyed_storage"

    with connection.schema_editor() as editor:
        editor.create_model(WithVariants)
        editor.create_model(Plain)
    return WithVariants, Plain


def bench_save(models_: tuple[type, type], data: bytes, endpoint: str, bucket: str, rounds: int) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    with_variants, plain = models_
    for mode in ("local", "s3"):
        if mode == "s3":
            use_s3(endpoint, bucket)
        else:
            use_local()

        def save(model: type) -> None:
            model.objects.create(image=SimpleUploadedFile("photo.jpg", data, "image/jpeg"))

        save(with_variants)  # first use: the client, Pillow's plugins
        save(plain)
        mine, other = interleaved(lambda: save(with_variants), lambda: save(plain), rounds)
        row(
            f"save a 12 MP photo + 3 variants, {'S3' if mode == 's3' else 'local'}",
            ms(mine),
            ms(other),
            "ImageField, same file, no variants",
            f"+{(mine - other) * 1e3:.0f} ms ({mine / other:.1f}x its time)",
        )


def bench_variant_url(models_: tuple[type, type]) -> None:
    with_variants, _ = models_
    name = "bench/with/7/photo/0661290e4f8c1b2a3d4e5f6a7b8c9d0e/IMG_2024.jpg"
    for label, configure in (("public S3", lambda: use_s3(None, "bench-bucket")), ("local", use_local)):
        configure()
        # As a page gets it: a row loaded with its size columns, so no file is read.
        instance = with_variants(image=name, width=3000, height=4000)
        image = instance.image
        assert image.variant("card").url.startswith("http")
        variant, plain = per_call_pair(
            lambda image=image: image.variant("card").url, lambda image=image: image.url
        )
        row(
            f"{label} variant('card').url",
            us(variant),
            us(plain),
            "url() of the original",
            f"{variant / plain:.1f}x its time",
        )


# The demo's pages in Chromium -----------------------------------------------------------------


@contextlib.contextmanager
def demo_site() -> Iterator[str]:
    """The demo (testproject) with its sample data, on the local disk, in a runserver of its
    own on a free port: a fresh database and media directory, removed afterwards."""
    place = tempfile.mkdtemp(prefix="keyed-bench-demo-")
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("BUCKET_NAME", "AWS_KEY", "AWS_SECRET", "AWS_ENDPOINT_URL_S3", "KEYED_STORAGE_PRIVATE")
    }
    env.update(
        DEMO_DB=os.path.join(place, "db.sqlite3"),
        DEMO_MEDIA_ROOT=os.path.join(place, "media"),
        KEYED_STORAGE_BASE_URL=origin,
        DJANGO_DEBUG="1",  # runserver serves the admin's static files only with DEBUG on
        PYTHONPATH=ROOT,
    )
    manage = [sys.executable, os.path.join(ROOT, "testproject", "manage.py")]
    for command in (["migrate", "--noinput"], ["demo_data"]):
        subprocess.run([*manage, *command], env=env, check=True, capture_output=True)
    server = subprocess.Popen(
        [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urlopen(origin + "/", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the demo's runserver did not start") from None
                time.sleep(0.2)
        yield origin
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(place, ignore_errors=True)


def original_of(url: str) -> str:
    """The original behind a variant's link ('.../logo.png~card-640x360-crop-q80.webp' is a
    variant of '.../logo.png'); any other link is its own original."""
    parts = urlsplit(url)
    directory, _, filename = parts.path.rpartition("/")
    original = unquote(filename).partition("~")[0]
    if original == unquote(filename):
        return url
    return parts._replace(path=f"{directory}/{quote(original)}").geturl()


def page_bytes(page, url: str) -> tuple[int, int, int, int]:
    """(image bytes downloaded, images, all bytes downloaded, image bytes of the originals)
    for one load of `url`, scrolled to the end so lazy images load too."""
    responses = []

    def collect(response) -> None:
        responses.append(response)

    page.on("response", collect)
    page.goto(url, wait_until="networkidle")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_load_state("networkidle")
    page.remove_listener("response", collect)
    sizes = {response.url: len(response.body()) for response in responses if response.ok}
    images = {r.url for r in responses if r.ok and r.request.resource_type == "image" and "/media/" in r.url}
    originals = {original_of(image) for image in images}
    original_bytes = sum(sizes.get(o) or len(urlopen(o, timeout=10).read()) for o in originals)
    return sum(sizes[i] for i in images), len(images), sum(sizes.values()), original_bytes


def bench_pages() -> None:
    """Bytes Chromium downloads for the demo's home page and the admin's event list, against
    the same pages' images as their originals."""
    if not os.access(CHROMIUM, os.X_OK):
        row("demo pages in Chromium", "skipped", "-", f"no Chromium at {CHROMIUM}", "-")
        return
    sys.path.insert(0, ROOT)
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM_ARGS

    with demo_site() as origin, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            pages = [("demo home page", origin + "/")]
            page.goto(origin + "/admin/login/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", "admin")
            page.click("input[type=submit]")
            page.wait_for_url(origin + "/admin/")
            pages.append(("admin event list", origin + "/admin/events/event/"))
            for label, url in pages:
                images, count, total, originals = page_bytes(page, url)
                row(
                    f"{label}, image bytes (Chromium)",
                    f"{_kb(images)} ({count} images)",
                    _kb(originals),
                    "the same images as originals",
                    f"{images / originals:.2f}x the bytes" if originals else "-",
                )
                row(
                    f"{label}, all bytes (Chromium)",
                    _kb(total),
                    _kb(total - images + originals),
                    "the same page with originals",
                    f"{total / (total - images + originals):.2f}x the bytes",
                )
            context.close()
        finally:
            browser.close()


def _kb(size: int) -> str:
    return f"{size / 1024:.1f} KiB"


def run(endpoint: str, bucket: str, *, quick: bool) -> None:
    data = photo()
    bench_render(data, rounds=3 if quick else 5)
    models_ = bench_models()
    bench_save(models_, data, endpoint, bucket, rounds=3 if quick else 5)
    bench_variant_url(models_)
    bench_pages()
