"""Audit storage against the database: objects no file field references (orphans), rows whose
object is missing; delete the orphans. One pass, in constant memory.

The store's listing and every file field's names, each in the order of the names' UTF-8 bytes,
are walked together (a merge join): an object is referenced when some row's name, or the name
of the original it is a variant of, equals it. Neither side is ever held whole.
"""

from __future__ import annotations

import heapq
import re
import string
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from django.apps import apps
from django.db import connections
from django.db.models import F, FileField, Model, QuerySet
from django.db.models.functions import Collate
from django.template.defaultfilters import filesizeformat

from ..backends import Backend, Stored
from ..images import VARIANT_MARK, is_variant_of
from ..keys import MAX_SEGMENT_BYTES, TOKEN_HEX_CHARS, KeyTemplate, split_tokened
from ..prefixes import whole_key
from ..replacement import _default_names
from ..storage import KeyedStorage

DEFAULT_GRACE = timedelta(days=1)
# A write in progress touches its temporary with every chunk; one untouched this long was
# cut short, whatever --older-than says.
TEMPORARY_MIN_AGE = timedelta(hours=1)
CHUNK_SIZE = 2000  # names fetched per round trip of each field's query
DELETE_BATCH = 1000  # S3's DeleteObjects limit; also one re-check query per field
EVERYTHING = "*"
# The collation that orders text by its UTF-8 bytes, per database. Elsewhere the database's
# own order is used and checked as it streams (see _in_order).
_BYTE_COLLATIONS = {"postgresql": "C", "sqlite": "BINARY"}
_DURATION = re.compile(r"(?:0|([1-9][0-9]*)([smhdw]))")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Past this, a variant's name may hold only the start of its original's filename.
_TRUNCATED_VARIANT = MAX_SEGMENT_BYTES - 4
_SAMPLES = 5


class OutOfOrder(ValueError):
    """A stream that is not in UTF-8 byte order: the merge cannot be trusted, so the run stops."""


def current_time() -> datetime:
    """The time the grace period counts back from. S3 dates objects by its own clock: a site
    whose clock runs ahead of it by more than the grace period would take uploads in flight
    for old ones (doctor checks the clocks agree)."""
    return datetime.now(UTC)


def parse_duration(text: str) -> timedelta:
    """'90m', '12h', '2d', '1w', '30s' or '0'; ValueError naming the value otherwise."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"--older-than {text!r} is not a duration: write a whole number and a unit, such as "
            "90m, 12h or 2d (s, m, h, d or w), or 0 for no grace period."
        )
    number, unit = match.groups()
    return timedelta(seconds=int(number) * _UNITS[unit]) if number else timedelta(0)


def describe(duration: timedelta) -> str:
    """'1 day', '12 hours', '90 minutes', '0 seconds': the largest whole unit."""
    seconds = int(duration.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


# Which fields reference files, and which names they make --------------------------------------


@dataclass(frozen=True)
class Source:
    """One file field on KeyedStorage of one model: its rows reference objects."""

    model: type[Model]
    field: FileField
    # The names its upload_to makes, as a regular expression; None: a function of the
    # project's own, which keyed_storage cannot read.
    pattern: str | None

    @property
    def label(self) -> str:
        return f"{self.model._meta.label}.{self.field.name}"

    def rows(self) -> QuerySet[Any]:
        # The base manager: rows a default manager hides (soft deletion) still reference files.
        attname = self.field.attname
        return self.model._base_manager.exclude(**{attname: ""}).exclude(**{f"{attname}__isnull": True})


def sources() -> list[Source]:
    """Every FileField (ImageField, KeyedImageField) on KeyedStorage of every installed model."""
    found = []
    for model in apps.get_models():
        if model._meta.proxy:
            continue  # its concrete model has the same rows
        for candidate in model._meta.local_concrete_fields:  # an inherited field: on its parent
            if isinstance(candidate, FileField) and isinstance(candidate.storage, KeyedStorage):
                found.append(Source(model, candidate, name_pattern(candidate.upload_to)))
    return found


def name_pattern(upload_to: object) -> str | None:
    """A regular expression matching every name `upload_to` can give a file (and its variants,
    stored beside it), or None when upload_to is a function keyed_storage cannot read."""
    if isinstance(upload_to, KeyTemplate):
        parts = []
        for literal, placeholder, _, _ in string.Formatter().parse(upload_to.pattern):
            parts.append(re.escape(literal))
            if placeholder is not None:
                parts.append("[^/]+")  # a placeholder fills exactly one segment
        return "".join(parts) + f"/[0-9a-f]{{{TOKEN_HEX_CHARS}}}/[^/]+"
    if isinstance(upload_to, str):
        # Django joins datetime.now().strftime(upload_to) and the file's name.
        parts = []
        for literal, directive in re.findall(r"([^%]*)(%.?)?", upload_to):
            parts.append(re.escape(literal))
            if directive == "%%":
                parts.append("%")
            elif directive:
                parts.append(".+")
        directory = "".join(parts)
        if directory and not directory.endswith("/"):
            directory += "/"
        return directory + "[^/]+"
    return None


# The two sorted streams -------------------------------------------------------------------------


class Ref(NamedTuple):
    """A name some row (or a field's default, pk None) references."""

    name: str
    source: Source | None
    pk: Any


def _in_order(items: Iterable[Any], what: str) -> Iterator[Any]:
    """`items` as they come, checked to be in UTF-8 byte order (Python compares str by code
    point, which is that order): a merge over an unsorted stream would take referenced objects
    for orphans, so it stops instead."""
    previous: str | None = None
    for item in items:
        name = item[0]
        if previous is not None and name < previous:
            raise OutOfOrder(
                f"{what} gave {name!r} after {previous!r}, which is not the order of their UTF-8 "
                "bytes: orphans cannot be told apart from referenced objects, so nothing more is "
                "decided. keyed_storage orders names byte-wise on SQLite and PostgreSQL."
            )
        previous = name
        yield item


def _field_refs(source: Source, chunk_size: int) -> Iterator[Ref]:
    rows = source.rows()
    attname = source.field.attname
    collation = _BYTE_COLLATIONS.get(connections[rows.db].vendor)
    order = Collate(F(attname), collation) if collation else F(attname)
    # A server-side cursor on PostgreSQL, fetchmany() on SQLite: chunk_size names at a time.
    query = rows.order_by(order, "pk").values_list(attname, "pk")
    for name, pk in query.iterator(chunk_size=chunk_size):
        yield Ref(name, source, pk)


def references(all_sources: list[Source], chunk_size: int = CHUNK_SIZE) -> Iterator[Ref]:
    """Every referenced name, rows and defaults, in UTF-8 byte order: one query per field."""
    defaults = sorted({(name, s.label) for s in all_sources for name in _default_names(s.field)})
    by_label = {source.label: source for source in all_sources}
    streams: list[Iterator[Ref]] = [
        _in_order(_field_refs(source, chunk_size), f"The database, for {source.label},")
        for source in all_sources
    ]
    streams.append(iter([Ref(name, by_label[label], None) for name, label in defaults]))
    return heapq.merge(*streams, key=lambda ref: ref.name)


class _Recent:
    """The referenced names passed so far that may still own a variant further on.

    A variant is named '<original>~<suffix>', after its original in byte order but not always
    right after it ('logo.png_x' may come between). An original stays here while names can
    still start with it plus '~': until the walk reaches original + '\\x7f' ('~' is 0x7e). So
    it holds only prefixes of the current name: at most a few, whatever the count of names.
    """

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._ends: list[tuple[str, str]] = []

    def pass_to(self, name: str) -> None:
        """Forget the names no variant at or after `name` can belong to."""
        while self._ends and self._ends[0][0] <= name:
            self._names.discard(heapq.heappop(self._ends)[1])

    def add(self, name: str) -> None:
        self.pass_to(name)
        if name not in self._names:
            self._names.add(name)
            heapq.heappush(self._ends, (name + "\x7f", name))

    def __contains__(self, name: str) -> bool:
        return name in self._names

    def __len__(self) -> int:
        return len(self._names)


def original_of(name: str) -> str | None:
    """The name of the original `name` would be a variant of, or None if it is none's."""
    directory, slash, filename = name.rpartition("/")
    head, mark, _ = filename.partition(VARIANT_MARK)
    if not mark or not head:
        return None
    return directory + slash + head


# The audit --------------------------------------------------------------------------------------


class Finding(NamedTuple):
    """One thing the audit found, of a kind (a section of the report)."""

    kind: str  # "orphan", "missing", "kept" (an orphan a row referenced by the time of deleting)
    name: str
    size: int = 0
    modified: datetime | None = None
    source: Source | None = None
    pk: Any = None


@dataclass
class Section:
    """The tally of one kind of finding, and how the summary says it. The report is a list of
    these, so another kind (the incomplete multipart uploads of a bucket, say) is one more
    section, not another report."""

    kind: str
    one: str  # "orphan", "row whose file is missing"
    many: str
    sized: bool = False  # whether the summary gives the bytes
    qualifier: str = ""  # "older than 1 day"
    count: int = 0
    bytes: int = 0
    deleted: int = 0

    def summary(self) -> str:
        parts = [f"{self.count} {self.one if self.count == 1 else self.many}"]
        if self.sized:
            parts.append(filesizeformat(self.bytes))
        if self.qualifier:
            parts.append(self.qualifier)
        return ", ".join(parts)


@dataclass
class Report:
    orphans: Section = field(default_factory=lambda: Section("orphan", "orphan", "orphans", sized=True))
    missing: Section = field(
        default_factory=lambda: Section(
            "missing", one="row whose file is missing", many="rows whose files are missing"
        )
    )
    listed: int = 0
    referenced: int = 0
    recent: int = 0  # unreferenced, but younger than the grace period
    in_use: int = 0  # temporaries of writes that may still be in progress
    kept: int = 0  # unreferenced when passed, referenced by the time they were to be deleted
    not_audited: int = 0  # under no key a field writes nor an --include
    not_audited_keys: list[str] = field(default_factory=list)  # the first few of their keys
    more_not_audited_keys: bool = False

    @property
    def sections(self) -> list[Section]:
        return [self.orphans, self.missing]


class Audit:
    """One walk of the store and the database. With `delete`, orphans are deleted in batches of
    DELETE_BATCH, each name checked against the database again just before (a row saved during
    the walk may reference it by then): a referenced object is never deleted."""

    def __init__(
        self,
        backend: Backend,
        *,
        grace: timedelta = DEFAULT_GRACE,
        include: Iterable[str] = (),
        delete: bool = False,
        chunk_size: int = CHUNK_SIZE,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.backend = backend
        self.grace = grace
        self.include = [prefix if prefix == EVERYTHING else whole_key(prefix) for prefix in include]
        self.delete = delete
        self.chunk_size = chunk_size
        self.sources = sources()
        patterns = [source.pattern for source in self.sources if source.pattern is not None]
        self._audited = re.compile("|".join(f"(?:{pattern})" for pattern in patterns)) if patterns else None
        self._now = now
        self.report = Report()  # filled as the run goes, so a stopped run can say how far it got
        self.report.orphans.qualifier = f"older than {describe(grace)}"

    @property
    def unreadable(self) -> list[Source]:
        """Fields whose upload_to is a function: their objects are audited only under --include."""
        return [source for source in self.sources if source.pattern is None]

    def audited(self, name: str) -> bool:
        """Whether `name` is a candidate: under a key some field writes, or under an --include."""
        if self._audited is not None and self._audited.fullmatch(name):
            return True
        return any(
            prefix == EVERYTHING or name == prefix or name.startswith(prefix + "/") for prefix in self.include
        )

    def run(
        self,
        on_finding: Callable[[Finding], None] = lambda finding: None,
        on_object: Callable[[Stored], object] = lambda stored: None,
    ) -> Report:
        started = (self._now or current_time)()
        cutoff = started - self.grace
        temporary_cutoff = started - max(self.grace, TEMPORARY_MIN_AGE)
        report = self.report
        refs = references(self.sources, self.chunk_size)
        ref = next(refs, None)
        recent = _Recent()
        batch: list[Stored] = []

        def missing(ref: Ref) -> None:
            if ref.source is not None and ref.pk is not None:  # a default names no row
                report.missing.count += 1
                on_finding(Finding("missing", ref.name, source=ref.source, pk=ref.pk))

        for stored in _in_order(self.backend.listing(), "The storage's listing"):
            on_object(stored)
            report.listed += 1
            while ref is not None and ref.name < stored.name:
                recent.add(ref.name)
                missing(ref)
                ref = next(refs, None)
            recent.pass_to(stored.name)
            referenced = False
            while ref is not None and ref.name == stored.name:
                referenced = True
                ref = next(refs, None)
            if referenced:
                recent.add(stored.name)
            elif (owner := original_of(stored.name)) is not None:
                referenced = owner in recent or self._truncated_variant_referenced(stored.name)
            if referenced:
                report.referenced += 1
                continue
            if stored.temporary:
                if stored.modified > temporary_cutoff:
                    report.in_use += 1
                    continue
            elif not self.audited(stored.name):
                report.not_audited += 1
                key = _key_of(stored.name)
                if key not in report.not_audited_keys:
                    if len(report.not_audited_keys) < _SAMPLES:
                        report.not_audited_keys.append(key)
                    else:
                        report.more_not_audited_keys = True
                continue
            elif stored.modified > cutoff:
                report.recent += 1
                continue
            report.orphans.count += 1
            report.orphans.bytes += stored.size
            on_finding(Finding("orphan", stored.name, stored.size, stored.modified))
            if self.delete:
                batch.append(stored)
                if len(batch) >= DELETE_BATCH:
                    self._delete(batch, on_finding)
                    batch = []
        while ref is not None:
            missing(ref)
            ref = next(refs, None)
        if batch:
            self._delete(batch, on_finding)
        return report

    def _truncated_variant_referenced(self, name: str) -> bool:
        """For a variant whose name reached the segment limit (its original's filename cut):
        whether a referenced original starts with what is left of it. Rare, so asked directly."""
        filename = name.rpartition("/")[2]
        if len(filename.encode("utf-8")) <= _TRUNCATED_VARIANT:
            return False
        owner = original_of(name)
        assert owner is not None
        for source in self.sources:
            # LIKE may ignore case (SQLite): what it finds is checked exactly below.
            candidates = source.rows().filter(**{f"{source.field.attname}__startswith": owner})
            for candidate in candidates.values_list(source.field.attname, flat=True).iterator():
                if is_variant_of(name, candidate):
                    return True
        return any(is_variant_of(name, default) for s in self.sources for default in _default_names(s.field))

    def still_referenced(self, names: list[str]) -> set[str]:
        """Those of `names` some row (or default) references now, themselves or as variants."""
        owners = {name: original_of(name) for name in names}
        wanted = sorted(set(names) | {owner for owner in owners.values() if owner})
        found: set[str] = set()
        for source in self.sources:
            found.update(_default_names(source.field))
            attname = source.field.attname
            for start in range(0, len(wanted), DELETE_BATCH):
                chunk = wanted[start : start + DELETE_BATCH]
                query = source.rows().filter(**{f"{attname}__in": chunk}).values_list(attname, flat=True)
                found.update(query)
        return {
            name
            for name in names
            if name in found
            or owners[name] in found
            or (owners[name] is not None and self._truncated_variant_referenced(name))
        }

    def _delete(self, batch: list[Stored], on_finding: Callable[[Finding], None]) -> None:
        kept = self.still_referenced([stored.name for stored in batch])
        doomed = [stored for stored in batch if stored.name not in kept]
        for stored in batch:
            if stored.name in kept:
                self.report.kept += 1
                self.report.orphans.count -= 1
                self.report.orphans.bytes -= stored.size
                on_finding(Finding("kept", stored.name, stored.size, stored.modified))
        if doomed:
            self.backend.delete_many([stored.name for stored in doomed])
            self.report.orphans.deleted += len(doomed)


def _key_of(name: str) -> str:
    """The key an object is stored under: '<key>' of '<key>/<token>/<filename>', else its directory."""
    tokened = split_tokened(name)
    if tokened is not None:
        return tokened[0]
    return name.rpartition("/")[0] or name
