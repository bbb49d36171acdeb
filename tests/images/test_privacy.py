"""Uploaded photos lose their location and identifying metadata, and keep their pixels and orientation.

Every file here is made on the spot with Pillow, with the metadata a phone or an editor writes:
GPS coordinates, maker and model, serial number, capture time, a maker note, an embedded
thumbnail, XMP, IPTC, comments. The tests read the results with Pillow and with parsers of their
own, and search the raw bytes for the values that must be gone.
"""

from __future__ import annotations

import io
import random
import struct
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from PIL import ExifTags, Image, ImageCms, ImageOps
from PIL.PngImagePlugin import PngInfo

from keyed_storage.images.privacy import SPOOL_BYTES, strip_identifying_metadata

from ..helpers import examples

# What a phone writes, and what must not survive anywhere in the file.
LATITUDE = (48, 1, 51, 1, 2960, 100)  # 48° 51' 29.60" N
LONGITUDE = (2, 1, 17, 1, 4020, 100)  # 2° 17' 40.20" E
MAKE, MODEL, SERIAL = "Pixelphone Inc", "Pixelphone 9 Pro", "SN-8675309"
TAKEN = "2024:05:01 12:34:56"
MAKER_NOTE = b"MAKERNOTE with the owner's name"
XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="" xmlns:exif="http://ns.adobe.com/exif/1.0/"'
    b' exif:GPSLatitude="48,51.4933N" exif:GPSLongitude="2,17.67E"/></rdf:RDF></x:xmpmeta>'
    b'<?xpacket end="w"?>'
)
COMMENT = b"Taken at home, 12 rue des Lilas"
IPTC_BYLINE = b"Jane Photographer"
SECRETS = (MAKE.encode(), MODEL.encode(), SERIAL.encode(), TAKEN.encode(), MAKER_NOTE, b"xmpmeta")
SECRETS += (b"48,51.4933N", COMMENT, IPTC_BYLINE)

ORIENTATION, GPS_IFD, EXIF_IFD = 0x0112, 0x8825, 0x8769


def minimal_tiff(orientation: int) -> bytes:
    """What the cleaned files carry: a big-endian TIFF header and an IFD0 with the Orientation alone."""
    return b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01" + bytes([0, orientation]) + b"\0" * 6


ASCII, SHORT, LONG, RATIONAL, UNDEFINED = 2, 3, 4, 5, 7

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# Making the files.


def picture(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    """Noise, so that a changed pixel shows, and not square, so that a lost orientation shows."""
    return Image.frombytes("RGB", (width, height), random.Random(seed).randbytes(width * height * 3))


def jpeg(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def _ifd(order: str, entries: list[tuple[int, int, int, bytes]], offset: int, next_ifd: int) -> bytes:
    """One TIFF IFD written at `offset`, its values longer than four bytes right after it."""
    values_at = offset + 2 + 12 * len(entries) + 4
    table, values = b"", b""
    for tag, kind, count, raw in sorted(entries):
        if len(raw) <= 4:
            field = raw.ljust(4, b"\0")
        else:
            field = struct.pack(order + "I", values_at + len(values))
            values += raw + b"\0" * (len(raw) % 2)
        table += struct.pack(order + "HHI", tag, kind, count) + field
    return struct.pack(order + "H", len(entries)) + table + struct.pack(order + "I", next_ifd) + values


def phone_exif(order: str = "<", orientation: int | None = 6, thumbnail: bytes = b"") -> bytes:
    """A TIFF structure as a phone writes it: IFD0, Exif and GPS sub-IFDs, and IFD1 with a thumbnail."""

    def text(tag: int, value: str) -> tuple[int, int, int, bytes]:
        return (tag, ASCII, len(value) + 1, value.encode() + b"\0")

    def rational(tag: int, numbers: tuple[int, ...]) -> tuple[int, int, int, bytes]:
        return (tag, RATIONAL, len(numbers) // 2, struct.pack(f"{order}{len(numbers)}I", *numbers))

    def long(tag: int, value: int) -> tuple[int, int, int, bytes]:
        return (tag, LONG, 1, struct.pack(order + "I", value))

    exif = [text(0x9003, TAKEN), (0x927C, UNDEFINED, len(MAKER_NOTE), MAKER_NOTE), text(0xA431, SERIAL)]
    gps = [
        (0x0000, 1, 4, b"\2\3\0\0"),
        text(0x0001, "N"),
        rational(0x0002, LATITUDE),
        text(0x0003, "E"),
        rational(0x0004, LONGITUDE),
    ]

    def layout(exif_at: int, gps_at: int, ifd1_at: int, thumbnail_at: int) -> list[bytes]:
        ifd0 = [text(0x010F, MAKE), text(0x0110, MODEL), long(EXIF_IFD, exif_at), long(GPS_IFD, gps_at)]
        if orientation is not None:
            ifd0.append((ORIENTATION, SHORT, 1, struct.pack(order + "H", orientation)))
        ifd1 = [long(0x0201, thumbnail_at), long(0x0202, len(thumbnail))] if thumbnail else []
        return [
            _ifd(order, ifd0, 8, ifd1_at if thumbnail else 0),
            _ifd(order, exif, exif_at, 0),
            _ifd(order, gps, gps_at, 0),
            _ifd(order, ifd1, ifd1_at, 0) if thumbnail else b"",
        ]

    offsets, at = [], 8
    for part in layout(0, 0, 0, 0):
        at += len(part)
        offsets.append(at)
    head = b"II*\0" if order == "<" else b"MM\0*"
    return head + struct.pack(order + "I", 8) + b"".join(layout(*offsets)) + thumbnail


def segment(code: int, payload: bytes) -> bytes:
    return bytes([0xFF, code]) + struct.pack(">H", len(payload) + 2) + payload


def photoshop_iptc() -> bytes:
    """An APP13 Photoshop segment with an IPTC By-line (2:80) in its resource 0x0404."""
    iptc = b"\x1c\x02\x50" + struct.pack(">H", len(IPTC_BYLINE)) + IPTC_BYLINE
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\0\0" + struct.pack(">I", len(iptc)) + iptc
    return segment(0xED, b"Photoshop 3.0\0" + resource)


def jpeg_segments(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """(marker code, payload) of each segment up to SOS, and where the entropy-coded data starts."""
    pos, found = 2, []
    while True:
        code, length = data[pos + 1], int.from_bytes(data[pos + 2 : pos + 4], "big")
        found.append((code, data[pos + 4 : pos + 2 + length]))
        pos += 2 + length
        if code == 0xDA:
            return found, pos


def phone_jpeg(orientation: int | None = 6) -> bytes:
    """A JPEG as a phone and an editor leave it, every kind of metadata at once."""
    thumbnail = jpeg(picture(16, 12, seed=1), quality=50)  # what the uncropped original looked like
    exif = b"Exif\0\0" + phone_exif("<", orientation, thumbnail)
    data = jpeg(picture(), quality=90, exif=exif, icc_profile=SRGB, comment=COMMENT)
    extended_xmp = b"http://ns.adobe.com/xmp/extension/\0" + b"0" * 32 + struct.pack(">II", 6, 0) + b"<x:"
    extra = (
        segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0" + XMP)
        + segment(0xE1, extended_xmp)
        + photoshop_iptc()
        + segment(0xE6, b"GoPro\0" + struct.pack(">6I", *LATITUDE))  # vendor telemetry
        + segment(0xEB, b"JP\0\0jumb c2pa " + SERIAL.encode())  # a C2PA manifest
    )
    segments, _ = jpeg_segments(data)
    # Before the first table, after what Pillow wrote: APP0, APP1 Exif, APP2 ICC, COM.
    first_table = 2
    for code, payload in segments:
        if not (0xE0 <= code <= 0xEF or code == 0xFE):
            break
        first_table += 4 + len(payload)
    return data[:first_table] + extra + data[first_table:]


def strip(data: bytes) -> bytes | None:
    cleaned = strip_identifying_metadata(io.BytesIO(data))
    if cleaned is None:
        return None
    with cleaned:
        return cleaned.read()


def assert_nothing_identifying(data: bytes) -> None:
    for order in "<>":
        assert struct.pack(f"{order}6I", *LATITUDE) not in data
        assert struct.pack(f"{order}6I", *LONGITUDE) not in data
    for secret in SECRETS:
        assert secret not in data, secret


def assert_same_pixels(before: bytes, after: bytes) -> None:
    original, cleaned = Image.open(io.BytesIO(before)), Image.open(io.BytesIO(after))
    assert (cleaned.format, cleaned.mode, cleaned.size) == (original.format, original.mode, original.size)
    assert cleaned.tobytes() == original.tobytes()
    # Displayed the same way: turned by the same orientation.
    assert ImageOps.exif_transpose(cleaned).tobytes() == ImageOps.exif_transpose(original).tobytes()
    assert ImageOps.exif_transpose(cleaned).size == ImageOps.exif_transpose(original).size


# JPEG


def test_a_phone_jpeg_has_everything_to_remove():
    """The fixture is what it claims: Pillow reads GPS, identity, a thumbnail, XMP and ICC in it."""
    data = phone_jpeg()
    image = Image.open(io.BytesIO(data))
    exif = image.getexif()
    assert exif[ORIENTATION] == 6 and exif[0x010F] == MAKE
    assert exif.get_ifd(GPS_IFD)[2] == (48, 51, 29.6)
    assert exif.get_ifd(EXIF_IFD)[0x9003] == TAKEN
    assert exif.get_ifd(ExifTags.IFD.IFD1)[0x0202] > 0
    assert image.info["icc_profile"] == SRGB
    assert "xmp" in image.info and image.info["comment"] == COMMENT
    assert {name for name, _ in image.applist} >= {"APP0", "APP1", "APP2", "APP6", "APP11", "APP13", "COM"}


def test_jpeg_location_and_identity_are_gone_and_the_orientation_stays_alone():
    cleaned = strip(phone_jpeg())
    assert cleaned is not None
    assert_nothing_identifying(cleaned)
    image = Image.open(io.BytesIO(cleaned))
    exif = image.getexif()
    assert dict(exif) == {ORIENTATION: 6}
    assert not exif.get_ifd(GPS_IFD) and not exif.get_ifd(EXIF_IFD)
    assert not exif.get_ifd(ExifTags.IFD.IFD1)  # no thumbnail of the uncropped original
    assert "xmp" not in image.info and "comment" not in image.info
    assert ImageOps.exif_transpose(image).size == (48, 64)


def test_jpeg_keeps_jfif_icc_tables_and_scan_byte_for_byte():
    original = phone_jpeg()
    cleaned = strip(original)
    assert cleaned is not None
    before, scan_before = jpeg_segments(original)
    after, scan_after = jpeg_segments(cleaned)
    assert original[scan_before:] == cleaned[scan_after:]  # the entropy-coded data
    assert [s for s in after if s[0] < 0xE0] == [s for s in before if s[0] < 0xE0]  # tables, frame, scan
    assert [code for code, _ in after] == [0xE0, 0xE1, 0xE2] + [c for c, _ in before if c < 0xE0]
    assert after[0] == before[0]  # JFIF
    assert Image.open(io.BytesIO(cleaned)).info["icc_profile"] == SRGB
    assert_same_pixels(original, cleaned)


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("orientation", [1, None])
def test_an_upright_jpeg_loses_its_exif_entirely(order, orientation):
    exif = b"Exif\0\0" + phone_exif(order, orientation)
    original = jpeg(picture(), exif=exif)
    cleaned = strip(original)
    assert cleaned is not None
    assert_nothing_identifying(cleaned)
    assert [code for code, _ in jpeg_segments(cleaned)[0] if code == 0xE1] == []
    assert not Image.open(io.BytesIO(cleaned)).getexif()
    assert_same_pixels(original, cleaned)


@pytest.mark.parametrize("orientation", range(2, 9))
def test_every_turning_orientation_is_kept_big_or_little_endian(orientation):
    for order in "<>":
        original = jpeg(picture(), exif=b"Exif\0\0" + phone_exif(order, orientation))
        cleaned = strip(original)
        assert cleaned is not None
        assert dict(Image.open(io.BytesIO(cleaned)).getexif()) == {ORIENTATION: orientation}
        assert_same_pixels(original, cleaned)


def test_a_jfif_thumbnail_goes_and_its_header_stays():
    original = jpeg(picture())
    segments, _ = jpeg_segments(original)
    assert segments[0][0] == 0xE0
    header = segments[0][1][:12] + b"\x02\x01" + picture(2, 1, seed=3).tobytes()
    original = original[:2] + segment(0xE0, header) + original[2 + 4 + len(segments[0][1]) :]
    jfxx = segment(0xE0, b"JFXX\0\x10" + jpeg(picture(8, 8, seed=4)))
    original = original[:2] + original[2 : 2 + 4 + len(header)] + jfxx + original[2 + 4 + len(header) :]
    cleaned = strip(original)
    assert cleaned is not None
    segments, _ = jpeg_segments(cleaned)
    assert segments[0] == (0xE0, header[:12] + b"\0\0")
    assert [code for code, _ in segments].count(0xE0) == 1
    assert_same_pixels(original, cleaned)


def test_a_jpeg_without_metadata_is_left_as_it_is():
    assert strip(jpeg(picture())) is None
    assert strip(jpeg(picture(), icc_profile=SRGB)) is None
    assert strip(jpeg(picture().convert("CMYK"))) is None  # Adobe APP14, no JFIF


def test_what_follows_the_image_goes_mpo_second_images_and_motion_photo_videos():
    """Second images (MPF), videos and vendor trailers after EOI carry their own metadata."""
    second = picture(seed=2)
    buffer = io.BytesIO()
    gps_exif = b"Exif\0\0" + phone_exif("<", 6)
    picture().save(buffer, "MPO", save_all=True, append_images=[second], exif=gps_exif)
    mpo = buffer.getvalue()
    assert Image.open(io.BytesIO(mpo)).n_frames == 2
    cleaned = strip(mpo)
    assert cleaned is not None
    assert_nothing_identifying(cleaned)
    image = Image.open(io.BytesIO(cleaned))
    assert image.format == "JPEG" and getattr(image, "n_frames", 1) == 1
    assert cleaned.endswith(b"\xff\xd9")
    assert image.tobytes() == Image.open(io.BytesIO(mpo)).tobytes()

    video = b"\0\0\0\x18ftypmp42" + b"\0" * 8 + b"\xa9xyz+48.8582+002.2945/"
    original = jpeg(picture()) + video
    cleaned = strip(original)
    assert cleaned == original[: -len(video)]


def test_a_truncated_jpeg_loses_its_metadata_and_keeps_every_byte_of_its_scan():
    original = phone_jpeg()
    _, scan = jpeg_segments(original)
    truncated = original[: scan + (len(original) - scan) // 2]
    cleaned = strip(truncated)
    assert cleaned is not None
    assert_nothing_identifying(cleaned)
    assert cleaned.endswith(truncated[scan:])


def test_metadata_after_junk_between_segments_is_still_found():
    """libjpeg, Pillow and ExifTool skip bytes that are not a marker; so does the cleaning."""
    exif = segment(0xE1, b"Exif\0\0" + phone_exif("<", 6))
    data = jpeg(picture())
    segments, _ = jpeg_segments(data)
    after_jfif = 2 + 4 + len(segments[0][1])
    original = data[:after_jfif] + b"junk\0\xff\0" + exif + data[after_jfif:]
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)  # readers find it
    cleaned = strip(original)
    assert cleaned is not None
    assert_nothing_identifying(cleaned)
    assert dict(Image.open(io.BytesIO(cleaned)).getexif()) == {ORIENTATION: 6}
    assert_same_pixels(original, cleaned)


def test_metadata_after_a_broken_length_is_left_as_it_is():
    """The documented limit: where the structure is lost, the rest is kept as it was."""
    exif = segment(0xE1, b"Exif\0\0" + phone_exif("<", 6))
    data = jpeg(picture())
    broken = data[:2] + b"\xff\xfe\x00\x01" + exif + data[2:]  # a COM segment of length 1
    assert strip(broken) is None


# PNG


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, found = 8, []
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert data[pos + 8 + length : pos + 12 + length] == struct.pack(">I", zlib.crc32(kind + body))
        found.append((kind, body))
        pos += 12 + length
        if kind == b"IEND":
            break
    return found


def phone_png(orientation: int = 6) -> bytes:
    info = PngInfo()
    info.add_text("Author", MAKE)
    info.add_text("Comment", COMMENT.decode(), zip=True)  # zTXt
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    info.add(b"tIME", struct.pack(">HBBBBB", 2024, 5, 1, 12, 34, 56))
    info.add(b"gAMA", struct.pack(">I", 45455))
    info.add(b"vpAg", b"\0\0\0\x40\0\0\0\x30\0")  # an unknown ancillary chunk
    info.add(b"tEXt", b"Model\0" + MODEL.encode(), after_idat=True)  # text after the image data
    buffer = io.BytesIO()
    exif = phone_exif(">", orientation)
    picture().save(buffer, "PNG", exif=exif, pnginfo=info, icc_profile=SRGB, dpi=(300, 300))
    return buffer.getvalue() + b"\0" * 7 + b"IDATuncropped"  # what an old cropping tool left


def test_png_location_text_and_xmp_go_orientation_colour_and_pixels_stay():
    original = phone_png()
    before = Image.open(io.BytesIO(original))
    assert before.getexif().get_ifd(GPS_IFD) and before.text["Author"] == MAKE
    cleaned = strip(original)
    assert cleaned is not None
    assert_nothing_identifying(cleaned)
    assert b"uncropped" not in cleaned and cleaned.endswith(b"IEND\xaeB`\x82")
    kinds = [kind for kind, _ in png_chunks(cleaned)]
    assert kinds == [b"IHDR", b"iCCP", b"gAMA", b"pHYs", b"eXIf", b"IDAT", b"IEND"]
    chunks, old = dict(png_chunks(cleaned)), png_chunks(original)
    assert [body for kind, body in old if kind == b"IDAT"] == [chunks[b"IDAT"]]
    assert all(chunks[kind] == body for kind, body in old if kind in (b"IHDR", b"iCCP", b"gAMA", b"pHYs"))
    image = Image.open(io.BytesIO(cleaned))
    assert dict(image.getexif()) == {ORIENTATION: 6} and not image.text
    assert image.info["icc_profile"] == SRGB and image.info["dpi"] == before.info["dpi"]
    assert_same_pixels(original, cleaned)


def test_an_upright_png_loses_its_exif_and_a_plain_png_is_left_as_it_is():
    cleaned = strip(phone_png(orientation=1))
    assert cleaned is not None
    assert b"eXIf" not in cleaned and not Image.open(io.BytesIO(cleaned)).getexif()
    buffer = io.BytesIO()
    picture().save(buffer, "PNG", icc_profile=SRGB, dpi=(72, 72))
    assert strip(buffer.getvalue()) is None


def test_an_unknown_critical_chunk_is_kept():
    data = phone_png()
    iend = data.index(b"IEND") - 4
    chunk = struct.pack(">I", 3) + b"ZZZZ" + b"abc" + struct.pack(">I", zlib.crc32(b"ZZZZabc"))
    cleaned = strip(data[:iend] + chunk + data[iend:])
    assert cleaned is not None
    assert (b"ZZZZ", b"abc") in png_chunks(cleaned)


def test_an_animated_png_keeps_its_frames():
    frames = [picture(seed=seed) for seed in range(3)]
    buffer = io.BytesIO()
    info = PngInfo()
    info.add_text("Author", MAKE)
    frames[0].save(buffer, "PNG", save_all=True, append_images=frames[1:], pnginfo=info, duration=100)
    original = buffer.getvalue()
    cleaned = strip(original)
    assert cleaned is not None and MAKE.encode() not in cleaned
    kept = {b"acTL", b"fcTL", b"fdAT", b"IDAT"}
    frames = [c for c in png_chunks(original) if c[0] in kept]
    assert [c for c in png_chunks(cleaned) if c[0] in kept] == frames
    image, before = Image.open(io.BytesIO(cleaned)), Image.open(io.BytesIO(original))
    assert image.n_frames == 3
    for frame in range(3):
        image.seek(frame)
        before.seek(frame)
        assert image.tobytes() == before.tobytes()


# WebP


def riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:4] == b"RIFF" and int.from_bytes(data[4:8], "little") == len(data) - 8
    pos, found = 12, []
    while pos < len(data):
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        found.append((data[pos : pos + 4], data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return found


def phone_webp(orientation: int = 6, **options: object) -> bytes:
    buffer = io.BytesIO()
    exif = b"Exif\0\0" + phone_exif("<", orientation)
    picture().save(buffer, "WEBP", exif=exif, xmp=XMP, icc_profile=SRGB, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("options", [{"lossless": True}, {"quality": 80}], ids=["lossless", "lossy"])
def test_webp_exif_becomes_the_orientation_alone_xmp_goes_flags_and_size_follow(options):
    original = phone_webp(**options)
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)
    cleaned = strip(original)
    assert cleaned is not None
    assert_nothing_identifying(cleaned)
    chunks, before = riff_chunks(cleaned), dict(riff_chunks(original))
    bitstream = b"VP8L" if options.get("lossless") else b"VP8 "
    assert [kind for kind, _ in chunks] == [b"VP8X", b"ICCP", bitstream, b"EXIF"]
    flags = chunks[0][1][0]
    assert flags & 0x08 and not flags & 0x04 and flags & 0x20  # Exif, no XMP, ICC
    assert chunks[0][1][1:] == before[b"VP8X"][1:]
    assert all(before[kind] == body for kind, body in chunks if kind != b"VP8X" and kind != b"EXIF")
    image = Image.open(io.BytesIO(cleaned))
    assert dict(image.getexif()) == {ORIENTATION: 6} and "xmp" not in image.info
    assert image.info["icc_profile"] == SRGB
    assert_same_pixels(original, cleaned)


def test_an_upright_webp_loses_its_exif_and_its_flag():
    cleaned = strip(phone_webp(orientation=1, lossless=True))
    assert cleaned is not None
    chunks = riff_chunks(cleaned)
    assert b"EXIF" not in dict(chunks) and not chunks[0][1][0] & 0x0C


def test_an_animated_webp_keeps_its_frames():
    frames = [picture(seed=seed) for seed in range(3)]
    buffer = io.BytesIO()
    exif = b"Exif\0\0" + phone_exif("<", 3)
    options = {"save_all": True, "append_images": frames[1:], "exif": exif, "xmp": XMP, "duration": 100}
    frames[0].save(buffer, "WEBP", lossless=True, **options)
    original = buffer.getvalue()
    cleaned = strip(original)
    assert cleaned is not None
    assert_nothing_identifying(cleaned)
    animation = [c for c in riff_chunks(original) if c[0] in (b"ANIM", b"ANMF")]
    assert [c for c in riff_chunks(cleaned) if c[0] in (b"ANIM", b"ANMF")] == animation
    image, before = Image.open(io.BytesIO(cleaned)), Image.open(io.BytesIO(original))
    assert image.n_frames == 3 and dict(image.getexif()) == {ORIENTATION: 3}
    for frame in range(3):
        image.seek(frame)
        before.seek(frame)
        assert image.tobytes() == before.tobytes()


def test_a_webp_without_metadata_is_left_as_it_is():
    for options in ({"lossless": True}, {"quality": 80}, {"lossless": True, "icc_profile": SRGB}):
        buffer = io.BytesIO()
        picture().save(buffer, "WEBP", **options)
        assert strip(buffer.getvalue()) is None


def test_lax_writers_exif_is_read_all_the_same():
    """An 'Exif' prefix in PNG, a second Exif segment in JPEG, Exif in a simple WebP without VP8X."""
    buffer = io.BytesIO()
    picture().save(buffer, "PNG")
    plain = buffer.getvalue()
    idat = plain.index(b"IDAT") - 4
    exif = b"Exif\0\0" + phone_exif(">", 8)
    exif_chunk = struct.pack(">I", len(exif)) + b"eXIf" + exif + struct.pack(">I", zlib.crc32(b"eXIf" + exif))
    cleaned = strip(plain[:idat] + exif_chunk + plain[idat:])
    assert cleaned is not None
    assert [body for kind, body in png_chunks(cleaned) if kind == b"eXIf"] == [minimal_tiff(8)]
    assert dict(Image.open(io.BytesIO(cleaned)).getexif()) == {ORIENTATION: 8}
    assert_nothing_identifying(cleaned)

    data = jpeg(picture(), exif=b"Exif\0\0" + phone_exif("<", 6))
    segments, _ = jpeg_segments(data)
    second = segment(0xE1, b"Exif\0\0" + phone_exif(">", 3))
    after_exif = 2 + sum(4 + len(payload) for _, payload in segments[:2])
    cleaned = strip(data[:after_exif] + second + data[after_exif:])
    assert cleaned is not None
    assert [c for c in jpeg_segments(cleaned)[0] if c[0] == 0xE1] == [(0xE1, b"Exif\0\0" + minimal_tiff(6))]

    buffer = io.BytesIO()
    picture().save(buffer, "WEBP", lossless=True)
    simple = buffer.getvalue()
    tiff = phone_exif("<", 6)
    exif_chunk = b"EXIF" + struct.pack("<I", len(tiff)) + tiff + b"\0" * (len(tiff) % 2)
    original = b"RIFF" + struct.pack("<I", len(simple) - 8 + len(exif_chunk)) + simple[8:] + exif_chunk
    cleaned = strip(original)
    assert cleaned == simple  # no VP8X to announce an Exif: none is written
    assert_same_pixels(original, cleaned)


# The contract with the caller.


def gif() -> bytes:
    buffer = io.BytesIO()
    picture().convert("P").save(buffer, "GIF", comment=COMMENT)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data", [b"", b"\xff\xd8", b"RIFF\0\0\0\0WEBP", b"\x89PNG\r\n\x1a\n", b"%PDF-1.7\n", gif()]
)
def test_other_formats_and_stubs_are_left_as_they_are(data):
    assert strip(data) is None


@pytest.mark.parametrize("format", ["JPEG", "PNG", "WEBP"])
def test_exif_written_by_pillow_itself_is_cleaned_too(format):
    """The same promise with an Exif block Pillow builds, not the tests' own TIFF writer."""
    exif = Image.Exif()
    exif[ORIENTATION], exif[0x010F], exif[0x0110] = 6, MAKE, MODEL
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 29.6), 3: "E", 4: (2.0, 17.0, 40.2)})
    exif.get_ifd(EXIF_IFD)[0x9003] = TAKEN
    buffer = io.BytesIO()
    picture().save(buffer, format, exif=exif, **({"lossless": True} if format == "WEBP" else {}))
    original = buffer.getvalue()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)[2] == (48.0, 51.0, 29.6)
    cleaned = strip(original)
    assert cleaned is not None
    assert all(secret not in cleaned for secret in (MAKE.encode(), MODEL.encode(), TAKEN.encode()))
    assert dict(Image.open(io.BytesIO(cleaned)).getexif()) == {ORIENTATION: 6}
    assert_same_pixels(original, cleaned)


def test_a_cleaned_file_needs_no_second_cleaning():
    for original in (phone_jpeg(), phone_png(), phone_webp(lossless=True)):
        cleaned = strip(original)
        assert cleaned is not None and strip(cleaned) is None


def test_the_original_is_rewound_and_the_copy_starts_at_zero():
    original = io.BytesIO(phone_jpeg())
    original.seek(100)
    cleaned = strip_identifying_metadata(original)
    assert original.tell() == 0
    assert cleaned is not None and cleaned.tell() == 0 and cleaned.seekable() and cleaned.readable()
    assert cleaned.read(3) == b"\xff\xd8\xff"
    cleaned.close()
    plain = io.BytesIO(jpeg(picture()))
    plain.seek(5)
    assert strip_identifying_metadata(plain) is None and plain.tell() == 0


def test_a_stream_that_cannot_seek_is_refused_with_the_reason():
    class Stream(io.RawIOBase):
        def readable(self) -> bool:
            return True

    with pytest.raises(ValueError, match="seekable"):
        strip_identifying_metadata(Stream())


# Hostile input: every loop ends, no length field makes a large allocation.


def _hostile_files() -> list[bytes]:
    jfif = jpeg(picture(8, 8))
    png, webp = io.BytesIO(), io.BytesIO()
    picture(8, 8).save(png, "PNG")
    picture(8, 8).save(webp, "WEBP", exif=b"Exif\0\0" + phone_exif("<", 6))
    png_data, webp_data = png.getvalue(), webp.getvalue()

    def chunk(length: int, kind: bytes = b"tEXt") -> bytes:
        return struct.pack(">I", length) + kind

    return [
        *(jfif[:2] + b"\xff\xe1" + struct.pack(">H", n) + jfif[2:] for n in (0, 1, 2, 0xFFFF)),
        jfif[:2] + b"\xff" * 100_000 + jfif[2:],  # fill bytes
        jfif[:2] + b"\xff\xfe\x00\x02" * 50_000 + jfif[2:],  # empty comments
        jfif[:2] + b"\xff\xda\x00\x02" + b"\xff\x00" * 50_000,  # a scan of stuffed bytes, no end
        *(png_data[:8] + chunk(n) + png_data[8:] for n in (2**31, 2**31 - 1, 0xFFFFFFFF, 2**20)),
        png_data[:8] + (chunk(0) + b"\0" * 4) * 50_000 + png_data[8:],  # empty text chunks
        png_data[:8] + chunk(0, b"\0\0\0\0") + png_data[8:],
        *(webp_data[:4] + struct.pack("<I", n) + webp_data[8:] for n in (0, 1, 3, 0xFFFFFFFF)),
        *(webp_data[:16] + struct.pack("<I", n) + webp_data[20:] for n in (0, 1, 0xFFFFFFF0, 0xFFFFFFFF)),
        webp_data[:12] + b"JUNK\0\0\0\0" * 50_000 + webp_data[12:],
    ]


@pytest.mark.timeout(60)
def test_hostile_lengths_end_quickly_without_large_allocations():
    for data in _hostile_files():
        tracemalloc.start()
        try:
            cleaned = strip_identifying_metadata(io.BytesIO(data))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        # The copy itself is at most the input's size (a spooled file in memory at these sizes).
        assert peak < 2 * len(data) + 2 * 1024 * 1024
        if cleaned is not None:
            assert len(cleaned.read()) <= len(data) + 64
            cleaned.close()


_SAMPLES = {}


def _sample(kind: str) -> bytes:
    if kind not in _SAMPLES:
        makers = {"jpeg": phone_jpeg, "png": phone_png, "webp": lambda: phone_webp(lossless=True)}
        _SAMPLES[kind] = makers[kind]()
    return _SAMPLES[kind]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real file with bytes overwritten (mostly in its headers), extreme lengths, cuts and insertions."""
    data = bytearray(_sample(draw(st.sampled_from(["jpeg", "png", "webp"]))))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.one_of(st.integers(0, 400), st.integers(0, len(data) - 1)))
        action = draw(st.sampled_from(["byte", "length", "insert", "delete"]))
        if action == "byte":
            data[at : at + 1] = bytes([draw(st.integers(0, 255))])
        elif action == "length":
            value = draw(st.sampled_from([0, 1, 2, 0xFF, 0xFFFF, 2**31 - 1, 2**31, 2**32 - 1]))
            data[at : at + 4] = value.to_bytes(4, draw(st.sampled_from(["big", "little"])))
        elif action == "insert":
            data[at:at] = draw(st.binary(max_size=16))
        else:
            del data[at : at + draw(st.integers(1, 64))]
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))) :]
    return bytes(data)


@pytest.mark.timeout(120)
@hsettings(max_examples=examples(600), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated())
def test_mutated_files_never_raise_hang_or_grow_and_clean_once(data):
    cleaned = strip(data)
    if cleaned is not None:
        assert len(cleaned) <= len(data) + 64
        assert strip(cleaned) is None  # what is left is clean by the same rules


SIGNATURES = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF"]


@pytest.mark.timeout(60)
@hsettings(max_examples=examples(300), deadline=None)
@given(data=st.binary(max_size=2000), prefix=st.sampled_from(SIGNATURES))
def test_random_bytes_behind_a_signature_never_raise(data, prefix):
    if prefix == b"RIFF":
        data = data[:4] + b"WEBP" + data[4:]
    strip(prefix + data)


# Large files: streamed, not read whole.


@pytest.fixture(scope="module")
def large_jpeg(tmp_path_factory):
    """About 28 MB of noise at quality 95 without chroma subsampling, with a phone's Exif."""
    path = tmp_path_factory.mktemp("large") / "large.jpg"
    noise = Image.frombytes("RGB", (4000, 3000), random.Random(5).randbytes(4000 * 3000 * 3))
    exif = b"Exif\0\0" + phone_exif("<", 6)
    noise.save(path, "JPEG", quality=95, subsampling=0, exif=exif, icc_profile=SRGB)
    return path


@pytest.mark.timeout(120)
def test_a_large_jpeg_is_streamed_not_read_whole(large_jpeg):
    size = large_jpeg.stat().st_size
    assert size > 20 * 1024 * 1024
    with large_jpeg.open("rb") as original:
        tracemalloc.start()
        try:
            cleaned = strip_identifying_metadata(original)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert cleaned is not None
        with cleaned:
            # The spool and a copy block: a fraction of the file.
            assert peak < SPOOL_BYTES * 2 + 1024 * 1024 < size / 2
            data, before = cleaned.read(), original.read()
    assert_nothing_identifying(data)
    assert data[jpeg_segments(data)[1] :] == before[jpeg_segments(before)[1] :]
    assert dict(Image.open(io.BytesIO(data)).getexif()) == {ORIENTATION: 6}


@pytest.mark.timeout(120)
def test_a_large_png_with_text_after_its_image_data_is_streamed(tmp_path):
    path = tmp_path / "large.png"
    info = PngInfo()
    info.add(b"tEXt", b"Author\0" + MAKE.encode(), after_idat=True)
    noise = Image.frombytes("RGB", (3000, 2700), random.Random(6).randbytes(3000 * 2700 * 3))
    noise.save(path, "PNG", compress_level=0, pnginfo=info)
    size = path.stat().st_size
    assert size > 20 * 1024 * 1024
    with path.open("rb") as original:
        tracemalloc.start()
        try:
            cleaned = strip_identifying_metadata(original)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert cleaned is not None
        with cleaned:
            assert peak < SPOOL_BYTES * 2 + 1024 * 1024 < size / 2
            data = cleaned.read()
    assert MAKE.encode() not in data and len(data) == size - (12 + len(b"Author\0" + MAKE.encode()))
