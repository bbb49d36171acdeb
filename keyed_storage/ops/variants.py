"""Build the declared variants of images stored before them (or before a spec changed): resumable."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.apps import apps
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile
from django.db import models

from .. import background
from ..exceptions import StorageError
from ..fields import KeyedImageField
from ..images import progress
from ..images.rendering import Rendered, displayed_size, render
from ..images.variants import ImageRefused, Variant, is_variant_of, variant_name, variants_prefix
from ..keys import has_token
from ..storage import KeyedStorage

# Rows fetched per query. Each chunk is a short query of its own (keyset pagination on the
# primary key), so memory stays flat whatever the table's size and no cursor stays open on
# a table the run updates (SQLite gives no isolation between them on one connection).
CHUNK_SIZE = 200


class FileFailed(Exception):
    """One stored file whose variants could not be made; the message says why. The run goes on."""


@dataclass(frozen=True)
class Target:
    """One KeyedImageField of one model, whose rows get their variants built."""

    model: type[models.Model]
    field: KeyedImageField

    @property
    def label(self) -> str:
        return f"{self.model._meta.label}.{self.field.name}"

    @property
    def rows(self) -> models.QuerySet[Any]:
        # The base manager: a default manager that hides rows (soft deletion, say) must not
        # hide their files from the run.
        stored = self.model._base_manager.exclude(**{self.field.attname: ""})
        return stored.exclude(**{f"{self.field.attname}__isnull": True})


@dataclass(frozen=True)
class Row:
    target: Target
    pk: Any
    name: str
    size: dict[str, int | None]  # the field's width_field and height_field, as stored


@dataclass
class Outcome:
    """What the run did for one row: the variants it built (or would build), and why not."""

    built: list[str] = field(default_factory=list)
    present: int = 0
    bytes: int = 0
    size_set: bool = False
    failed: str = ""
    replaced: bool = False  # the row got another file while its variants were being made


@dataclass
class Report:
    rows: int = 0
    built: int = 0
    present: int = 0
    sizes: int = 0
    bytes: int = 0
    replaced: int = 0
    rows_built: int = 0  # rows with at least one variant built (or enqueued)
    failed: list[tuple[Row, str]] = field(default_factory=list)

    def add(self, row: Row, outcome: Outcome) -> None:
        self.rows += 1
        self.present += outcome.present
        if outcome.failed:
            self.failed.append((row, outcome.failed))
        elif outcome.replaced:
            self.replaced += 1
        else:
            self.built += len(outcome.built)
            self.rows_built += bool(outcome.built)
            self.bytes += outcome.bytes
            self.sizes += outcome.size_set


# What to build for ---------------------------------------------------------------------------


def _image_fields(model: type[models.Model]) -> list[KeyedImageField]:
    return [f for f in model._meta.fields if isinstance(f, KeyedImageField)]


def _labels(targets: list[Target]) -> str:
    return ", ".join(target.label for target in targets) or "none"


def targets(model: str | None = None, field_name: str | None = None) -> list[Target]:
    """The fields to build for: every KeyedImageField that declares variants, or those of the
    model and field named. ValueError, naming what exists, when the names match none."""
    every = [
        Target(candidate, image_field)
        for candidate in apps.get_models()
        if not candidate._meta.proxy  # its concrete model has the same rows
        for image_field in _image_fields(candidate)
        if image_field.model is candidate  # an inherited field is done on the parent's table
    ]
    with_variants = [target for target in every if target.field.variants]
    if model is not None:
        try:
            named = apps.get_model(model)
        except (LookupError, ValueError):
            raise ValueError(
                f"No model {model!r}: name it as app_label.ModelName. "
                f"Fields with variants: {_labels(with_variants)}."
            ) from None
        own = [Target(named, image_field) for image_field in _image_fields(named)]
        if not own:
            raise ValueError(
                f"{named._meta.label} has no KeyedImageField. Fields with variants: {_labels(with_variants)}."
            )
        every = own
        with_variants = [target for target in own if target.field.variants]
    if field_name is not None:
        chosen = [target for target in every if target.field.name == field_name]
        if not chosen:
            where = f"{every[0].model._meta.label} has no" if model is not None else "No model has a"
            raise ValueError(f"{where} KeyedImageField {field_name!r}. KeyedImageFields: {_labels(every)}.")
        with_variants = [target for target in chosen if target.field.variants]
        if not with_variants:
            raise ValueError(f"{_labels(chosen)} declares no variants: there is nothing to build.")
    elif model is not None and not with_variants:
        raise ValueError(f"{_labels(every)} declares no variants: there is nothing to build.")
    return with_variants


# Building ------------------------------------------------------------------------------------


class BuildVariants:
    """Build the variants of every stored file of `targets`; with `missing`, only those not stored.

    Each variant is written whole or not at all (KeyedStorage's writes are atomic), and a
    row's size columns are set after its variants, so an interrupted run leaves nothing
    that a run with `missing` would take for done.
    """

    def __init__(
        self, targets: list[Target], *, missing: bool, dry_run: bool = False, chunk_size: int = CHUNK_SIZE
    ):
        self.targets = targets
        self.missing = missing
        self.dry_run = dry_run
        self.chunk_size = chunk_size
        self.report = Report()  # filled as the run goes, so an interrupted run can say how far it got

    def count(self, target: Target) -> int:
        return target.rows.count()

    def rows(self, target: Target) -> Iterator[Row]:
        size_columns = [name for name in target.field.dimension_fields if name]
        query = target.rows.order_by("pk").values_list("pk", target.field.attname, *size_columns)
        last: Any = None
        while True:
            chunk = list((query if last is None else query.filter(pk__gt=last))[: self.chunk_size])
            for pk, name, *size in chunk:
                yield Row(target, pk, name, dict(zip(size_columns, size, strict=True)))
            if len(chunk) < self.chunk_size:
                return
            last = chunk[-1][0]

    def run(self, on_row: Callable[[Row, Outcome], None] = lambda row, outcome: None) -> Report:
        for target in self.targets:
            for row in self.rows(target):
                try:
                    outcome = self.build(row)
                except FileFailed as failure:
                    outcome = Outcome(failed=str(failure))
                self.report.add(row, outcome)
                on_row(row, outcome)
        return self.report

    def build(self, row: Row) -> Outcome:
        """Build what `row` lacks; FileFailed when its original cannot give variants."""
        image_field, storage = row.target.field, row.target.field.keyed_storage
        try:
            present = stored_variants(storage, row.name) if self.missing else set()
        except SuspiciousFileOperation as error:
            raise FileFailed(f"not a valid key: {error}") from None
        names = {key: variant_name(row.name, key, spec) for key, spec in image_field.variants.items()}
        needed = {key: spec for key, spec in image_field.variants.items() if names[key] not in present}
        outcome = Outcome(present=len(names) - len(needed))
        size_missing = not all(row.size.values())
        if not needed and not size_missing:
            if not self.dry_run:
                all_stored(row)
            return outcome
        if self.dry_run:
            outcome.built = [names[key] for key in needed]
            outcome.size_set = size_missing
            return outcome
        rendered, shown = self.read(row, needed)
        for key, output in rendered.items():
            saved = storage.save(
                names[key], ContentFile(output.data), overwrite=True, immutable=has_token(row.name)
            )
            outcome.built.append(saved)
            outcome.bytes += len(output.data)
        # The size as shown, set when it is missing or wrong (a plain ImageField stored the
        # size before the EXIF orientation, which a quarter turn swaps).
        columns = dict(zip(image_field.dimension_fields, shown, strict=True))
        sizes = {name: value for name, value in columns.items() if name and row.size[name] != value}
        same_file = row.target.rows.filter(pk=row.pk, **{image_field.attname: row.name})
        if sizes:
            still = same_file.update(**sizes) == 1
            outcome.size_set = still
        else:
            still = same_file.exists()
        if not still:
            # Another file took the row's place meanwhile, and its replacement may already
            # have swept the old file's variants: remove ours, which nothing else would.
            for name in outcome.built:
                storage.delete(name)
            outcome.replaced = True
        else:
            all_stored(row)
        return outcome

    def read(self, row: Row, needed: dict[str, Variant]) -> tuple[dict[str, Rendered], tuple[int, int]]:
        """The variants `needed` and the size as shown, from one read of the original."""
        storage = row.target.field.keyed_storage
        try:
            original = storage.open(row.name, "rb")
        except SuspiciousFileOperation as error:
            raise FileFailed(f"not a valid key: {error}") from None
        except OSError:
            if not storage.exists(row.name):
                raise FileFailed("the original is missing from storage") from None
            raise
        with original:
            try:
                rendered = render(original, needed, max_pixels=row.target.field.max_pixels) if needed else {}
                shown = displayed_size(original)
            except ImageRefused as refused:
                raise FileFailed(" ".join(refused.messages)) from None
            except (BotoCoreError, ClientError, StorageError):
                raise  # the storage, not this file: the run stops and says so
            except Exception as error:
                # A picture Pillow stumbles on in a way of its own: this file fails, the run goes on.
                raise FileFailed(f"no variants could be made ({type(error).__name__}: {error})") from None
        return rendered, shown


class EnqueueVariants(BuildVariants):
    """Hand the variants of every stored file of `targets` to the site's task backend: each
    row records them as pending (pages show a stand-in meanwhile) and a worker's
    keyed_storage.tasks.make_variants makes them; with `missing`, only those not stored.

    The record is written by an UPDATE conditional on the row still naming the file, so a row
    whose file was replaced meanwhile keeps its new file's record and gets no task. A row's
    `built` lists the variants the worker is to make (nothing when none is missing).
    """

    TASK = "keyed_storage.tasks.make_variants"

    def __init__(
        self, targets: list[Target], *, missing: bool, dry_run: bool = False, chunk_size: int = CHUNK_SIZE
    ):
        refuse_enqueue(targets)
        super().__init__(targets, missing=missing, dry_run=dry_run, chunk_size=chunk_size)

    def build(self, row: Row) -> Outcome:
        image_field = row.target.field
        try:
            present = stored_variants(image_field.keyed_storage, row.name) if self.missing else set()
        except SuspiciousFileOperation as error:
            raise FileFailed(f"not a valid key: {error}") from None
        names = {key: variant_name(row.name, key, spec) for key, spec in image_field.variants.items()}
        made = [key for key, name in names.items() if name in present]
        outcome = Outcome(present=len(made), built=[name for name in names.values() if name not in present])
        if not outcome.built or self.dry_run:
            if not outcome.built and not self.dry_run:
                all_stored(row)
            return outcome
        assert image_field.pending_field is not None  # refuse_enqueue() saw to it
        record = progress.begin(row.target.model(pk=row.pk), image_field, made)
        same_file = row.target.rows.filter(pk=row.pk, **{image_field.attname: row.name})
        if not same_file.update(**{image_field.pending_field: record}):
            outcome.replaced = True  # its new file's save saw to its variants
            return outcome
        label = row.target.model._meta.label
        background.enqueue_after_commit(self.TASK, label, str(row.pk), image_field.name, row.name)
        return outcome


def all_stored(row: Row) -> None:
    """Clear the row's record of variants to come (KeyedImageField's pending_field), if it
    still names the file: every variant is stored, so pages show them and `doctor` stops
    counting the row as waiting or failed."""
    pending = row.target.field.pending_field
    if pending:
        same_file = row.target.rows.filter(pk=row.pk, **{row.target.field.attname: row.name})
        same_file.exclude(**{f"{pending}__isnull": True}).update(**{pending: None})


def refuse_enqueue(targets: list[Target]) -> None:
    """ValueError, saying what to do, unless a worker runs the tasks and every field records them."""
    if not background.in_background():
        raise ValueError(
            f"--enqueue hands the variants to a worker, but there is none: {background.describe()}. "
            f"Set TASKS[{background.BACKEND_ALIAS!r}] to a backend a worker runs (such as "
            "django_tasks_db.DatabaseBackend, with `manage.py db_worker`), or leave out --enqueue to "
            "build the variants in this command."
        )
    unrecorded = [target for target in targets if not target.field.pending_field]
    if unrecorded:
        recorded = [target for target in targets if target.field.pending_field]
        raise ValueError(
            f"--enqueue needs a pending_field, where the row records the variants to come; "
            f"{_labels(unrecorded)} {'has' if len(unrecorded) == 1 else 'have'} none. Declare one "
            "(KeyedImageField(pending_field=...)), or build those in this command without --enqueue"
            + (
                f"; fields that can be enqueued: {_labels(recorded)} (name them with --model/--field)."
                if recorded
                else "."
            )
        )


def stored_variants(storage: KeyedStorage, name: str) -> set[str]:
    """Names of the variants stored beside the original `name`, whatever their spec: one listing."""
    return {
        candidate
        for candidate in storage.names_starting_with(variants_prefix(name))
        if is_variant_of(candidate, name)
    }
