"""How a multipart direct upload is cut into parts, and how its stored parts are joined again.

start_upload() (keyed_storage.direct) asks part_size_for() whether a file goes in parts and of
which size; part_urls() (keyed_storage.direct.multipart) sizes each part's URL with part_length();
finish_upload() joins the parts with complete(). Beneath both, so neither imports the other
for it; it knows nothing of tickets or references.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _

from ..exceptions import FileRefused

if TYPE_CHECKING:
    from ..backends import Backend
    from ..config import Config

# S3 takes at most this many parts in one upload.
MAX_PARTS = 10_000
# Part sizes grown past the configured one (a file too large for 10,000 parts) are whole MiB.
_MIB = 1024 * 1024


def part_size_for(size: int, current: Config) -> int:
    """The part size of an upload of `size` bytes: 0 if it is sent in one POST. The configured
    part size, grown to whole MiB if the file would otherwise need more than MAX_PARTS parts."""
    if size < current.direct_part_threshold:
        return 0
    smallest = -(-size // MAX_PARTS)
    if smallest <= current.direct_part_size:
        return current.direct_part_size
    return -(-smallest // _MIB) * _MIB


def part_count(size: int, part_size: int) -> int:
    return max(1, -(-size // part_size))


def part_length(number: int, size: int, part_size: int) -> int:
    """How many bytes part `number` (from 1) has: `part_size`, but the last has what is left."""
    return min(part_size, size - (number - 1) * part_size)


def complete(backend: Backend, name: str, upload_id: str, size: int, part_size: int) -> bool:
    """Join the stored parts of upload `upload_id` into the object `name` (the published name the
    parts were sent for), if every part is there with its size; called by finish_upload() before
    it checks the object. True if this call completed it; an upload already completed is left alone."""
    parts = backend.list_parts(name, upload_id)
    if parts is None:
        return False  # completed already (or aborted): finish_upload() finds the object, or not
    count = part_count(size, part_size)
    stored = {part.number: part.size for part in parts}
    missing = [number for number in range(1, count + 1) if number not in stored]
    if missing:
        raise FileRefused(
            _(
                "Only part of the file was received (%(missing)d of %(count)d parts are missing). "
                "Please upload it again."
            ),
            code="direct_incomplete",
            params={"missing": len(missing), "count": count},
        )
    wrong = [n for n, length in stored.items() if n > count or length != part_length(n, size, part_size)]
    if wrong:
        raise FileRefused(
            _("Part %(number)d of the file does not have the size it should. Please upload it again."),
            code="direct_incomplete",
            params={"number": wrong[0]},
        )
    return backend.complete_parts(name, upload_id, parts)
