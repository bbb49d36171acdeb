"""Audit storage against the database: objects no file field references (orphans), rows whose
object is missing; delete the orphans. One pass, in constant memory.

The store's listing and every file field's names, each in path order (see path_key), are
walked together (a merge join): an object is referenced when some row's name, or the name of
the original it is a variant of, equals it. Neither side is ever held whole.
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
from django.db.models import F, FileField, Model, QuerySet, Value
from django.db.models.functions import Collate, Replace
from django.template.defaultfilters import filesizeformat

from ..backends import Backend, OperationsBackend, Stored
from ..images.variants import VARIANT_MARK, is_variant_of
from ..keys import MAX_SEGMENT_BYTES, TOKEN_HEX_CHARS, KeyTemplate, split_tokened
from ..lifecycle.replacement import default_names
from ..storage import KeyedStorage
from .prefixes import whole_key

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
# Stands for '/' in path_key: below every character a key may hold (keys refuse control
# characters), and not NUL, which PostgreSQL's text cannot hold.
_SLASH = "\x01"
# The characters that sort below '/' in UTF-8: where byte order and path order part.
_BELOW_SLASH = re.compile(r"[\x00-\x2e]")
_DURATION = re.compile(r"(?:0|([1-9][0-9]*)([smhdw]))")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Past this, a variant's name may hold only the start of its original's filename.
_TRUNCATED_VARIANT = MAX_SEGMENT_BYTES - 4
_SAMPLES = 5
# Names a listing may hold back to put it in path order before asking the store (see _PathOrder).
HOLD_LIMIT = 1000
# The guard against deleting with the wrong database (another site's, an empty one, the demo's
# own SQLite file instead of the site's): against it, nearly every object looks unreferenced
# and most rows' files look missing, and --delete would wipe the store. Before each batch is
# deleted, the audit so far must not look like that (see mismatch()), unless trusted. A right
# database after a mass clean-up can look the same: the refusal says how to go on.
SUSPECT_MIN_OBJECTS = 10  # audited objects (referenced or not) before the share is judged
SUSPECT_UNREFERENCED = 0.9  # this share of them unreferenced
SUSPECT_MIN_ROWS = 10  # rows naming a file before the share is judged
SUSPECT_MISSING = 0.5  # this share of them naming a file the store does not have
TRUST_FLAG = "--trust-database"


class OutOfOrder(ValueError):
    """A stream that is not in path order: the merge cannot be trusted, so the run stops."""


def path_key(name: str) -> str:
    """What names are merged by: path order, segment by segment, each segment by its UTF-8
    bytes; that is byte order with '/' below every character ('a/b' before 'a-b').

    Stores list in one of two orders: AWS S3, moto and the local disk in plain byte order
    ('a-b' before 'a/b'), SeaweedFS directory by directory, which is path order. A byte-order
    listing turns into path order holding back only a name or two (see _PathOrder); the
    reverse would hold back whole directories. Python compares str by code point, which is
    the order of their UTF-8 bytes.
    """
    return name.replace("/", _SLASH)


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

    key: str  # path_key(name)
    name: str
    source: Source | None
    pk: Any


def _in_order(items: Iterable[Any], what: str) -> Iterator[Any]:
    """`items` (each with a .name) as they come, checked to be in path order: a merge over an
    unsorted stream would take referenced objects for orphans, so it stops instead."""
    previous: tuple[str, str] | None = None
    for item in items:
        key = path_key(item.name)
        if previous is not None and key < previous[0]:
            raise OutOfOrder(
                f"{what} gave {item.name!r} after {previous[1]!r}, which is not the order of "
                "their UTF-8 bytes segment by segment: orphans cannot be told apart from "
                "referenced objects, so nothing more is decided. keyed_storage orders names so "
                "on SQLite and PostgreSQL."
            )
        previous = (key, item.name)
        yield item


class _PathOrder:
    """A store's listing in path order, from a listing in byte order or in path order already.

    In byte order a name X comes before the names Y that path order puts first exactly when
    both start alike and X goes on with a character below '/' where Y has '/' ('events/7-old/...'
    before 'events/7/...'). All such Y sort below X[:i] + '0', where i is the first such
    character of X, so X is held until the listing reaches that bound: usually the next name or
    two ('.../logo.png' waits for '.../logo0'). Whatever a path-order listing makes wait is in
    order anyway.

    When more than `hold_limit` names wait (all of 'events/2024-pycon/...' waiting for a
    possible 'events/2024/...'), the store is asked whether anything is named 'events/2024/...'
    at all (one listing request); if not, they go on. Only a sibling key that exists keeps its
    neighbours waiting.
    """

    def __init__(self, backend: OperationsBackend, hold_limit: int | None = None) -> None:
        self.backend = backend
        self.hold_limit = HOLD_LIMIT if hold_limit is None else hold_limit
        self.most_held = 0
        self._absent: set[str] = set()  # keys Q under which nothing is stored: no 'Q/...' to wait for
        self._present: set[str] = set()  # keys Q under which something is: waiting is needed

    def __iter__(self) -> Iterator[Stored]:
        held: list[tuple[str, int, Stored]] = []  # (path key, arrival, object)
        for arrival, stored in enumerate(self.backend.stored_objects()):
            heapq.heappush(held, (path_key(stored.name), arrival, stored))
            self.most_held = max(self.most_held, len(held))
            while held:
                first = held[0][2].name
                if stored.name >= self._bound(first):
                    yield heapq.heappop(held)[2]
                elif not (len(held) > self.hold_limit and self._asked(first)):
                    break
        while held:
            yield heapq.heappop(held)[2]

    def _waits_on(self, name: str) -> Iterator[str]:
        """The keys Q whose 'Q/...' names path order puts before `name` and bytes after it."""
        for below in _BELOW_SLASH.finditer(name):
            key = name[: below.start()]
            if key and key not in self._absent:  # no name starts with '/'
                yield key

    def _bound(self, name: str) -> str:
        """The name the listing must reach before `name` can go on; '' when it need not wait."""
        key = next(self._waits_on(name), None)
        return "" if key is None else key + "0"

    def _asked(self, name: str) -> bool:
        """Ask the store about the key `name` waits on first; True if it turned out empty."""
        key = next(self._waits_on(name), None)
        if key is None or key in self._present:
            return False
        if next(iter(self.backend.stored_objects(under=key)), None) is None:
            self._absent.add(key)
            return True
        self._present.add(key)
        return False


def _field_refs(source: Source, chunk_size: int) -> Iterator[Ref]:
    rows = source.rows()
    attname = source.field.attname
    collation = _BYTE_COLLATIONS.get(connections[rows.db].vendor)
    in_path_order = Replace(F(attname), Value("/"), Value(_SLASH))
    order = Collate(in_path_order, collation) if collation else in_path_order
    # A server-side cursor on PostgreSQL, fetchmany() on SQLite: chunk_size names at a time.
    query = rows.order_by(order, "pk").values_list(attname, "pk")
    for name, pk in query.iterator(chunk_size=chunk_size):
        yield Ref(path_key(name), name, source, pk)


def references(all_sources: list[Source], chunk_size: int = CHUNK_SIZE) -> Iterator[Ref]:
    """Every referenced name, rows and defaults, in path order: one query per field."""
    defaults = sorted(
        {(name, s.label) for s in all_sources for name in default_names(s.field)},
        key=lambda default: path_key(default[0]),
    )
    by_label = {source.label: source for source in all_sources}
    streams: list[Iterator[Ref]] = [
        _in_order(_field_refs(source, chunk_size), f"The database, for {source.label},")
        for source in all_sources
    ]
    streams.append(iter([Ref(path_key(name), name, by_label[label], None) for name, label in defaults]))
    return heapq.merge(*streams, key=lambda ref: ref.key)


class _Recent:
    """The referenced names passed so far that may still own a variant further on, by path key.

    A variant is named '<original>~<suffix>', after its original but not always right after
    it ('logo.png_x' may come between). An original stays here while names can still start
    with it plus '~': until the walk reaches original + '\\x7f' ('~' is 0x7e). So it holds
    only prefixes of the current name: at most a few, whatever the count of names.
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

    # "orphan", "missing", "kept" (an orphan a row referenced by the time of deleting), or
    # "unfinished" (a multipart upload never completed: `pk` is its upload id, `modified` its start)
    kind: str
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
    said_when_none: bool = True  # whether the summary says "0 <many>"

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
    # Multipart uploads begun and never completed (a direct upload abandoned midway, a save
    # killed while sending parts): invisible to the listing of objects, and in S3 billed.
    unfinished: Section = field(
        default_factory=lambda: Section(
            "unfinished", one="unfinished upload", many="unfinished uploads", said_when_none=False
        )
    )
    recent_unfinished: int = 0  # begun within the grace period: maybe still being sent
    listed: int = 0
    referenced: int = 0
    found: int = 0  # rows whose file is stored (with `missing`, every row that names a file)
    recent: int = 0  # unreferenced, but younger than the grace period
    in_use: int = 0  # temporaries of writes that may still be in progress
    kept: int = 0  # unreferenced when passed, referenced by the time they were to be deleted
    not_audited: int = 0  # under no key a field writes nor an --include
    not_audited_keys: list[str] = field(default_factory=list)  # the first few of their keys
    more_not_audited_keys: bool = False

    @property
    def sections(self) -> list[Section]:
        return [self.orphans, self.missing, self.unfinished]


class WrongDatabase(Exception):
    """Deleting was refused: the audit looks like one against another database (see mismatch)."""


def mismatch(report: Report) -> str | None:
    """Why the database audited looks like the wrong one for this store, with the counts; None
    when it does not (or when too few objects and rows were seen to tell)."""
    unreferenced = report.orphans.count + report.recent
    objects = report.referenced + report.kept + unreferenced
    rows = report.found + report.missing.count
    reasons = []
    if objects >= SUSPECT_MIN_OBJECTS and unreferenced >= SUSPECT_UNREFERENCED * objects:
        reasons.append(
            f"{unreferenced} of {objects} audited objects ({unreferenced / objects:.0%}) are referenced "
            "by no row"
        )
    if rows >= SUSPECT_MIN_ROWS and report.missing.count >= SUSPECT_MISSING * rows:
        reasons.append(
            f"{report.missing.count} of {rows} rows ({report.missing.count / rows:.0%}) name a file "
            "the store does not have"
        )
    if not reasons:
        return None
    return (
        f"This looks like the wrong database for this store: {' and '.join(reasons)}. Check that "
        "DATABASES (and whatever selects it) is the site's own for this bucket or MEDIA_ROOT."
    )


class _ReferenceWalk:
    """The database's references, in the listing's order, walked beside the listing: whether a
    row names each stored object, and the rows whose object the listing passed without having."""

    def __init__(self, refs: Iterator[Ref], report: Report, on_finding: Callable[[Finding], None]) -> None:
        self._refs = refs
        self._ref = next(refs, None)
        self._report = report
        self._on_finding = on_finding
        self.recent = _Recent()  # referenced names passed so far that may own a variant further on

    def names(self, name: str) -> bool:
        """Whether a row names the stored object `name`; the rows passed on the way are missing."""
        key = path_key(name)
        while self._ref is not None and self._ref.key < key:
            self.recent.add(self._ref.key)
            self._missing(self._ref)
            self._ref = next(self._refs, None)
        self.recent.pass_to(key)
        referenced = False
        while self._ref is not None and self._ref.key == key:
            if self._ref.name == name:
                referenced = True
                if self._ref.source is not None and self._ref.pk is not None:  # a default names no row
                    self._report.found += 1
            else:  # the same key, another name: one holding the stand-in for '/' itself
                self._missing(self._ref)
            self._ref = next(self._refs, None)
        if referenced:
            self.recent.add(key)
        return referenced

    def finish(self) -> None:
        """The rows after the listing's last object: their objects are missing."""
        while self._ref is not None:
            self._missing(self._ref)
            self._ref = next(self._refs, None)

    def _missing(self, ref: Ref) -> None:
        if ref.source is not None and ref.pk is not None:  # a default names no row
            self._report.missing.count += 1
            self._on_finding(Finding("missing", ref.name, source=ref.source, pk=ref.pk))


class Audit:
    """One walk of the store and the database. With `delete`, orphans are deleted in batches of
    DELETE_BATCH, each name checked against the database again just before (a row saved during
    the walk may reference it by then): a referenced object is never deleted. Nor is anything
    while the audit so far looks like one against the wrong database (see mismatch), unless
    `trust_database`: WrongDatabase is raised instead."""

    def __init__(
        self,
        backend: Backend,
        *,
        grace: timedelta = DEFAULT_GRACE,
        include: Iterable[str] = (),
        delete: bool = False,
        trust_database: bool = False,
        chunk_size: int = CHUNK_SIZE,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.backend = backend
        self.grace = grace
        self.include = [prefix if prefix == EVERYTHING else whole_key(prefix) for prefix in include]
        self.delete = delete
        self.trust_database = trust_database
        self.chunk_size = chunk_size
        self.sources = sources()
        patterns = [source.pattern for source in self.sources if source.pattern is not None]
        self._audited = re.compile("|".join(f"(?:{pattern})" for pattern in patterns)) if patterns else None
        self._now = now
        self.report = Report()  # filled as the run goes, so a stopped run can say how far it got
        self.report.orphans.qualifier = f"older than {describe(grace)}"
        self.report.unfinished.qualifier = f"begun more than {describe(grace)} ago"

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
        walk = _ReferenceWalk(references(self.sources, self.chunk_size), report, on_finding)
        batch: list[Stored] = []
        for stored in _in_order(_PathOrder(self.backend), "The storage's listing"):
            on_object(stored)
            report.listed += 1
            if self._referenced(stored, walk) or self._spared(stored, cutoff, temporary_cutoff):
                continue
            report.orphans.count += 1
            report.orphans.bytes += stored.size
            on_finding(Finding("orphan", stored.name, stored.size, stored.modified))
            if self.delete:
                batch.append(stored)
                if len(batch) >= DELETE_BATCH:
                    self._delete(batch, on_finding)
                    batch = []
        walk.finish()
        if batch:
            self._delete(batch, on_finding)
        self._unfinished(cutoff, on_finding)
        return report

    def _referenced(self, stored: Stored, walk: _ReferenceWalk) -> bool:
        """Whether a row (or a default) names `stored`, or the original `stored` is a variant of."""
        referenced = walk.names(stored.name)
        if not referenced and (owner := original_of(stored.name)) is not None:
            referenced = path_key(owner) in walk.recent or self._truncated_variant_referenced(stored.name)
        if referenced:
            self.report.referenced += 1
        return referenced

    def _spared(self, stored: Stored, cutoff: datetime, temporary_cutoff: datetime) -> bool:
        """Whether an unreferenced object is left alone, counted by why: the temporary file of a
        write that may be in progress, an object under no audited key, or one written recently.
        An old temporary file is an orphan wherever it is."""
        if stored.temporary:
            if stored.modified > temporary_cutoff:
                self.report.in_use += 1
                return True
            return False
        if not self.audited(stored.name):
            self._not_audited(stored.name)
            return True
        if stored.modified > cutoff:
            self.report.recent += 1
            return True
        return False

    def _not_audited(self, name: str) -> None:
        report = self.report
        report.not_audited += 1
        key = _key_of(name)
        if key not in report.not_audited_keys:
            if len(report.not_audited_keys) < _SAMPLES:
                report.not_audited_keys.append(key)
            else:
                report.more_not_audited_keys = True

    def _unfinished(self, cutoff: datetime, on_finding: Callable[[Finding], None]) -> None:
        """Multipart uploads begun before `cutoff` and never completed, aborted with `delete`
        (their parts removed). One streamed listing; no row can refer to an unfinished upload."""
        for name, upload_id, started in self.backend.incomplete_uploads():
            if started > cutoff:
                self.report.recent_unfinished += 1
                continue
            self.report.unfinished.count += 1
            on_finding(Finding("unfinished", name, modified=started, pk=upload_id))
            if self.delete:
                self.backend.abort_parts(name, upload_id)
                self.report.unfinished.deleted += 1

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
        return any(is_variant_of(name, default) for s in self.sources for default in default_names(s.field))

    def still_referenced(self, names: list[str]) -> set[str]:
        """Those of `names` some row (or default) references now, themselves or as variants."""
        owners = {name: original_of(name) for name in names}
        wanted = sorted(set(names) | {owner for owner in owners.values() if owner})
        found: set[str] = set()
        for source in self.sources:
            found.update(default_names(source.field))
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
        if not self.trust_database and (reason := mismatch(self.report)):
            raise WrongDatabase(reason)
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
