"""Create the demo's admin user and sample events, with images and audio made on the spot."""

import io
import math
import struct
import wave

from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand
from PIL import Image, ImageDraw

from events.about import ADMIN_PASSWORD, ADMIN_USER
from events.models import Event, Session, Speaker, Sponsor

EVENTS = [
    {
        "name": "PyCon Demo",
        "color": "#1d4e89",
        "description": "Three days of talks about Python, recorded and posted the same evening.",
        "sessions": [("Opening keynote", 440.0), ("Storage without surprises", 523.25)],
        "speakers": ["Ada Lovelace", "Grace Hopper"],
        "sponsors": ["Acme Cloud", "Bits & Bytes"],
    },
    {
        "name": "DjangoCon Demo",
        "color": "#0c4b33",
        "description": "The web framework for perfectionists with deadlines, and their uploads.",
        "sessions": [("Welcome", 392.0)],
        "speakers": ["Alan Turing"],
        "sponsors": ["Pony Hosting"],
    },
]


# Pictures of the sizes people upload (a phone photo, a designer's logo export), so the
# variants the pages show are a fraction of the originals' bytes.


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(image: Image.Image) -> bytes:
    """A camera's JPEG: some sensor grain, so it weighs what a photo of its size does."""
    grain = Image.effect_noise(image.size, 64).convert("RGB")
    buffer = io.BytesIO()
    Image.blend(image, grain, 0.12).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def logo_png(text: str, color: str, width: int = 1200, height: int = 600) -> bytes:
    image = Image.new("RGB", (width, height), color)
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 40, width - 41, height - 41), outline="white", width=16)
    draw.text((width // 2, height // 2), text, fill="white", font_size=height // 6, anchor="mm")
    return _png(image)


def background_jpeg(color: str, width: int = 2400, height: int = 1600) -> bytes:
    """A photo-sized picture: diagonal stripes in the event's colour over a soft gradient."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    image = Image.blend(image, Image.new("RGB", (width, height), "#f6f8fa"), 0.8)
    draw = ImageDraw.Draw(image)
    for x in range(-height, width, 96):
        draw.line((x, height, x + height, 0), fill=color, width=36)
    return _jpeg(image)


def portrait_jpeg(name: str, color: str, width: int = 1200, height: int = 1500) -> bytes:
    image = Image.new("RGB", (width, height), color)
    draw = ImageDraw.Draw(image)
    initials = "".join(part[0] for part in name.split()[:2])
    middle, radius = width // 2, width * 7 // 24
    draw.ellipse((middle - radius, height // 6, middle + radius, height // 6 + 2 * radius), fill="white")
    draw.text((middle, height // 6 + radius), initials, fill=color, font_size=radius, anchor="mm")
    draw.text((middle, height * 5 // 6), name, fill="white", font_size=height // 14, anchor="mm")
    return _jpeg(image)


def sponsor_png(name: str, width: int = 900, height: int = 300) -> bytes:
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((12, 12, width - 13, height - 13), radius=48, outline="#59636e", width=12)
    draw.text((width // 2, height // 2), name, fill="#1f2328", font_size=height * 3 // 10, anchor="mm")
    return _png(image)


def slides_pdf(title: str) -> bytes:
    pages = []
    for number, line in enumerate([title, "Keys, not paths", "Thank you"], start=1):
        page = Image.new("RGB", (800, 450), "white")
        draw = ImageDraw.Draw(page)
        draw.text((60, 180), line, fill="#1f2328", font_size=48)
        draw.text((720, 400), str(number), fill="#59636e", font_size=24)
        pages.append(page)
    buffer = io.BytesIO()
    pages[0].save(buffer, format="PDF", save_all=True, append_images=pages[1:])
    return buffer.getvalue()


def tone_wav(seconds: float = 6.0, frequency: float = 440.0, rate: int = 16000) -> bytes:
    """A soft tone that steps up a fifth halfway, so seeking is audible."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        total = int(seconds * rate)
        samples = []
        for i in range(total):
            pitch = frequency * 1.5 if i >= total // 2 else frequency
            samples.append(int(6000 * math.sin(2 * math.pi * pitch * i / rate)))
        out.writeframes(struct.pack(f"<{total}h", *samples))
    return buffer.getvalue()


def upload_file(name: str, content: bytes, content_type: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type)


class Command(BaseCommand):
    help = "Create the demo admin user and sample events (does nothing to events if some exist)."

    def handle(self, *args, **options):
        if not User.objects.filter(username=ADMIN_USER).exists():
            User.objects.create_superuser(ADMIN_USER, "admin@example.org", ADMIN_PASSWORD)
        if not Event.objects.exists():
            for spec in EVENTS:
                self._create_event(spec)
        self.stdout.write(
            f"Demo ready: {Event.objects.count()} events. "
            f"Admin: /admin/ user {ADMIN_USER!r} password {ADMIN_PASSWORD!r} (demo only). "
            f"Files go to: {Event._meta.get_field('logo').storage.backend}."
        )

    def _create_event(self, spec: dict) -> None:
        color = spec["color"]
        event = Event.objects.create(
            name=spec["name"],
            description=spec["description"],
            logo=upload_file("logo.png", logo_png(spec["name"], color), "image/png"),
            background=upload_file("background.jpg", background_jpeg(color), "image/jpeg"),
        )
        for title, frequency in spec["sessions"]:
            Session.objects.create(
                event=event,
                title=title,
                audio=upload_file("talk.wav", tone_wav(frequency=frequency), "audio/wav"),
                slides=upload_file("slides.pdf", slides_pdf(title), "application/pdf"),
            )
        for name in spec["speakers"]:
            Speaker.objects.create(
                event=event,
                name=name,
                photo=upload_file("photo.jpg", portrait_jpeg(name, color), "image/jpeg"),
            )
        for name in spec["sponsors"]:
            Sponsor.objects.create(
                event=event,
                name=name,
                website="https://example.org/",
                logo=upload_file("logo.png", sponsor_png(name), "image/png"),
            )
