"""Create the demo's admin user and a sample event, with a logo and audio made on the spot."""

import io
import math
import struct
import wave

from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand
from PIL import Image, ImageDraw

from events.models import Event, Session

ADMIN_USER, ADMIN_PASSWORD = "admin", "admin"


def logo_png(text: str, color: str) -> bytes:
    image = Image.new("RGB", (480, 240), color)
    draw = ImageDraw.Draw(image)
    draw.rectangle((16, 16, 463, 223), outline="white", width=6)
    draw.text((40, 100), text, fill="white", font_size=40)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def tone_wav(seconds: float = 3.0, frequency: float = 440.0, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        frames = (
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * frequency * i / rate)))
            for i in range(int(seconds * rate))
        )
        out.writeframes(b"".join(frames))
    return buffer.getvalue()


class Command(BaseCommand):
    help = "Create the demo admin user and sample data (idempotent)."

    def handle(self, *args, **options):
        if not User.objects.filter(username=ADMIN_USER).exists():
            User.objects.create_superuser(ADMIN_USER, "admin@example.org", ADMIN_PASSWORD)
        if not Event.objects.exists():
            for name, color in [("PyCon Demo", "#1d4e89"), ("DjangoCon Demo", "#0c4b33")]:
                event = Event.objects.create(
                    name=name, logo=SimpleUploadedFile("logo.png", logo_png(name, color), "image/png")
                )
                Session.objects.create(
                    event=event,
                    title="Opening keynote",
                    audio=SimpleUploadedFile("keynote.wav", tone_wav(), "audio/wav"),
                )
        self.stdout.write(
            f"Demo ready. Admin: /admin/ user {ADMIN_USER!r} password {ADMIN_PASSWORD!r} (demo only).\n"
            f"Files go to: {Event._meta.get_field('logo').storage.backend}"
        )
