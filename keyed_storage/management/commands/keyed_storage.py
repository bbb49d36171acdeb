"""`manage.py keyed_storage policy | doctor | sync | delete-prefix | variants | orphans`: set up, prove
and move storage, build image variants, and find what the database and the storage disagree on."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.template.defaultfilters import filesizeformat

from keyed_storage import KeyedStorage, backends, config
from keyed_storage.ops import doctor, orphans, policy
from keyed_storage.ops.prefixes import list_prefix
from keyed_storage.ops.sync import Entry, Sync
from keyed_storage.ops.variants import BuildVariants, EnqueueVariants, Outcome, Report, Row, targets

if TYPE_CHECKING:
    from typing import NoReturn

    from _typeshed import SupportsWrite
    from tqdm import tqdm

    # By name: in Command's methods' signatures `orphans` is the method.
    from keyed_storage.ops.orphans import Audit
    from keyed_storage.ops.orphans import Report as AuditReport


Argument = tuple[tuple[str, ...], dict[str, Any]]


def argument(*flags: str, **options: Any) -> Argument:
    """One add_argument() call, written as one."""
    return flags, options


@dataclasses.dataclass(frozen=True)
class Subcommand:
    """A subcommand's help and arguments. `verbose`, the help of -v 2, is given to the long-running
    ones, which also take --progress/--no-progress (_progress_options)."""

    name: str
    help: str
    arguments: tuple[Argument, ...] = ()
    verbose: str = ""


SUBCOMMANDS = (
    Subcommand(
        "policy",
        "Print the least-privilege IAM policy (and a bucket policy).",
        (
            argument("--bucket", help="Bucket name; defaults to BUCKET_NAME."),
            argument(
                "--public-read",
                nargs="+",
                action="extend",
                default=[],
                metavar="PREFIX",
                help="Also print a bucket policy letting anyone GET objects under these keys ('*': all).",
            ),
            argument(
                "--only",
                choices=["iam", "bucket", "lifecycle", "cors"],
                help="Print only that policy document, e.g. for `aws iam put-user-policy --policy-document`.",
            ),
            argument(
                "--origin",
                dest="origins",
                nargs="+",
                action="extend",
                default=[],
                metavar="ORIGIN",
                help="The site's origin(s), e.g. https://example.org, for the CORS rule that lets its pages "
                "send direct uploads (default: KEYED_STORAGE_BASE_URL).",
            ),
        ),
    ),
    Subcommand("doctor", "Say which backend is active and why, then prove it works."),
    Subcommand(
        "sync",
        "Copy every file between the local disk and S3.",
        (
            argument("--from", dest="source", choices=["local", "s3"], required=True),
            argument("--to", dest="target", choices=["local", "s3"], required=True),
            argument("--dry-run", action="store_true", help="Say what would be copied; copy nothing."),
        ),
        verbose="2 lists every file with its outcome.",
    ),
    Subcommand(
        "delete-prefix",
        "Delete every object under a whole key.",
        (
            argument("prefix", metavar="PREFIX", help="A whole key such as events/7."),
            argument("--yes", action="store_true", help="Really delete; without it, only list."),
        ),
    ),
    Subcommand(
        "variants",
        "Build the declared variants of images stored before them (or before a spec changed).",
        (
            argument("--model", metavar="APP_LABEL.MODEL", help="Only this model's KeyedImageFields."),
            argument("--field", metavar="NAME", help="Only the KeyedImageField of this name."),
            argument(
                "--missing",
                action="store_true",
                help="Build only the variants not stored yet (one listing per file); without it, "
                "rebuild every declared variant.",
            ),
            argument("--dry-run", action="store_true", help="Say what would be built; build nothing."),
            argument(
                "--enqueue",
                action="store_true",
                help="Hand the variants to the site's worker instead of building them here: each row "
                "records them as pending in its pending_field (pages show a stand-in meanwhile) and a "
                "keyed_storage.tasks.make_variants task is enqueued to TASKS['default']. Refused when "
                "no worker backend is configured, and for a KeyedImageField without a pending_field "
                "(build those without --enqueue). The worker does not set empty width and height "
                "columns: a run without --enqueue does.",
            ),
        ),
        verbose="2 lists every variant built (or enqueued).",
    ),
    Subcommand(
        "orphans",
        "List (with --delete, remove) stored objects no file field references, and rows "
        "whose file is missing.",
        (
            argument(
                "--older-than",
                default="1d",
                metavar="DURATION",
                help="Only objects last written longer ago than this: 90m, 12h, 2d, 1w or 0 "
                "(default 1d, so uploads in flight are spared).",
            ),
            argument(
                "--include",
                action="append",
                default=[],
                metavar="PREFIX",
                help="Also audit every object under this whole key (repeatable; '*': the whole "
                "store), e.g. keys a field's own upload_to function writes. By default only names "
                "some field's upload_to makes are audited.",
            ),
            argument("--delete", action="store_true", help="Delete the orphans found (in batches)."),
            argument(
                orphans.TRUST_FLAG,
                action="store_true",
                help="With --delete: delete even when the audit looks like one against the wrong "
                "database (most audited objects unreferenced, or most rows' files missing), which is "
                "refused otherwise.",
            ),
        ),
        verbose="2 also lists the fields audited.",
    ),
)


class Command(BaseCommand):
    help = "Operations on keyed_storage: policy, doctor, sync, delete-prefix, variants, orphans."
    requires_system_checks = []  # doctor reports a broken configuration itself, in plain words

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        for subcommand in SUBCOMMANDS:
            p = commands.add_parser(subcommand.name, help=subcommand.help)
            for flags, options in subcommand.arguments:
                p.add_argument(*flags, **options)
            if subcommand.verbose:
                _progress_options(p, subcommand.verbose)

    def handle(self, *args: Any, subcommand: str, **options: Any) -> None:
        # mypy joins the four methods' signatures into a bare 'function', which no Callable accepts.
        handler: Callable[..., None] = {  # type: ignore[assignment]
            "policy": self.policy,
            "doctor": self.doctor,
            "sync": self.sync,
            "delete-prefix": self.delete_prefix,
            "variants": self.variants,
            "orphans": self.orphans,
        }[subcommand]
        try:
            handler(**options)
        except (ImproperlyConfigured, SuspiciousFileOperation, ValueError) as error:
            raise CommandError(str(error)) from None
        except (BotoCoreError, ClientError, OSError) as error:
            raise CommandError(f"{error}\nRun `manage.py keyed_storage doctor` to find out why.") from None

    # policy -----------------------------------------------------------------------------

    def policy(
        self,
        *,
        bucket: str | None,
        public_read: list[str],
        only: str | None,
        origins: list[str],
        **options: Any,
    ) -> None:
        from keyed_storage.backends.s3 import S3Backend

        cfg, _ = config.inspect()
        bucket = bucket or (cfg.bucket if cfg else "")
        if not bucket:
            raise CommandError("Which bucket? Pass --bucket NAME or set BUCKET_NAME.")
        if only == "bucket" and not public_read:
            raise CommandError(
                "--only bucket needs --public-read PREFIX: without it no bucket policy is made."
            )
        base = cfg or config.Config(backend="s3")
        acls = policy.uses_acls(S3Backend(dataclasses.replace(base, backend="s3", bucket=bucket)))
        documents = {"IAMPolicy": policy.iam_policy(bucket, acls=acls)}
        if public_read:
            documents["BucketPolicy"] = policy.bucket_policy(bucket, public_read)
        documents["LifecycleConfiguration"] = policy.lifecycle_configuration()
        origins = origins or ([cfg.base_url] if cfg and cfg.base_url else [])
        if only == "cors" and not origins:
            raise CommandError(
                "--only cors needs the site's origin: pass --origin https://example.org or set "
                "KEYED_STORAGE_BASE_URL."
            )
        if origins:
            try:
                documents["CORSConfiguration"] = policy.cors_configuration(origins)
            except ValueError as error:
                raise CommandError(str(error)) from None
        if only:
            chosen = {
                "iam": "IAMPolicy",
                "bucket": "BucketPolicy",
                "lifecycle": "LifecycleConfiguration",
                "cors": "CORSConfiguration",
            }
            self.stdout.write(json.dumps(documents[chosen[only]], indent=2))
            return
        self.stdout.write(json.dumps(documents, indent=2))
        self.stderr.write(self._policy_notes(bucket, public_read, acls, origins))

    def _policy_notes(self, bucket: str, public_read: list[str], acls: bool, origins: list[str]) -> str:
        command = f"python manage.py keyed_storage policy --bucket {shlex.quote(bucket)}"
        notes = [
            "",
            "IAMPolicy: attach it to the app's own IAM user (or role), e.g.",
            f"  aws iam put-user-policy --user-name {bucket}-app --policy-name keyed-storage \\",
            f'    --policy-document "$({command} --only iam)"',
        ]
        if acls:
            notes.append(
                "It includes s3:PutObjectAcl because uploads send an ACL (AWS_S3_OBJECT_PARAMETERS)."
            )
        if public_read:
            prefixes = " ".join(shlex.quote(prefix) for prefix in public_read)
            notes += [
                "BucketPolicy: lets anyone GET the objects under " + ", ".join(public_read) + ".",
                "Block Public Access must allow public bucket policies for it to work:",
                f"  aws s3api put-public-access-block --bucket {bucket} \\",
                "    --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,\\",
                "BlockPublicPolicy=false,RestrictPublicBuckets=false",
                f"  aws s3api put-bucket-policy --bucket {bucket} \\",
                f'    --policy "$({command} --public-read {prefixes} --only bucket)"',
            ]
        notes += [
            "LifecycleConfiguration: makes S3 remove the parts of multipart uploads left unfinished for "
            f"{policy.ABANDONED_AFTER_DAYS} day (invisible, billed). It replaces the bucket's lifecycle "
            "rules: if it has some, add this rule to them.",
            f"  aws s3api put-bucket-lifecycle-configuration --bucket {bucket} \\",
            f'    --lifecycle-configuration "$({command} --only lifecycle)"',
        ]
        if origins:
            quoted = " ".join(shlex.quote(origin) for origin in origins)
            notes += [
                "CORSConfiguration: lets the pages of " + ", ".join(origins) + " send direct uploads to "
                "the bucket (a POST, or the PUTs of a multipart upload's parts). It replaces the "
                "bucket's CORS rules: if it has some, add this rule to them.",
                f"  aws s3api put-bucket-cors --bucket {bucket} \\",
                f'    --cors-configuration "$({command} --origin {quoted} --only cors)"',
            ]
        else:
            notes.append(
                "CORSConfiguration: pass --origin https://your.site (or set KEYED_STORAGE_BASE_URL) for "
                "the CORS rule that lets the site's pages send direct uploads to the bucket."
            )
        return "\n".join(notes)

    # doctor -----------------------------------------------------------------------------

    def doctor(self, **options: Any) -> None:
        header, steps = doctor.run()
        for line in header:
            self.stdout.write(line)
        passed = failed = 0
        for step in steps:
            if step.ok:
                passed += 1
                self.stdout.write(
                    (self.style.WARNING("! ") if step.warning else self.style.SUCCESS("✓ ")) + step.title
                )
                if step.warning:
                    self.stdout.write(f"    cause: {step.cause}\n    fix:   {step.fix}")
                continue
            failed += 1
            self.stdout.write(self.style.ERROR("✗ ") + step.title)
            self.stdout.write(f"    cause: {step.cause}")
            if step.fix:
                self.stdout.write(f"    fix:   {step.fix}")
        if failed:
            raise CommandError(f"doctor: {failed} check(s) failed, {passed} passed.", returncode=1)
        self.stdout.write(f"All {passed} checks passed.")

    def _progress_output(self, progress: bool | None) -> tuple[Any, bool]:
        """Where progress bars go (standard error's own stream) and whether to show them:
        as --progress/--no-progress say, else when that stream is a terminal."""
        out = getattr(self.stderr, "_out", self.stderr)
        return out, progress if progress is not None else bool(getattr(out, "isatty", lambda: False)())

    # sync -------------------------------------------------------------------------------

    def sync(self, *, source: str, target: str, dry_run: bool, progress: bool | None, **options: Any) -> None:
        job = Sync(config.current(), source, target, dry_run=dry_run)
        entries = job.entries()
        total = sum(entry.size for entry in entries)
        verbose = options["verbosity"] >= 2
        self.stdout.write(
            f"{'Dry run: ' if dry_run else ''}{len(entries)} files ({filesizeformat(total)}) "
            f"from {source} to {target}."
        )
        out, show = self._progress_output(progress)
        files_bar, bytes_bar = _bars(out, len(entries), total, show)

        def on_file(entry: Entry, outcome: str) -> None:
            files_bar.update(1)
            if outcome == "would copy" or verbose:
                files_bar.write(f"{outcome}: {entry.name} ({filesizeformat(entry.size)})", file=out)

        with files_bar, bytes_bar:
            report = job.run(entries, on_bytes=bytes_bar.update, on_file=on_file)
        for name, why in report.failed:
            self.stderr.write(f"failed: {name}: {why}")
        verb = "Would copy" if dry_run else "Copied"
        summary = (
            f"{verb} {len(report.copied)} files ({filesizeformat(report.copied_bytes)}), "
            f"skipped {len(report.skipped)} already there, {len(report.failed)} failed."
        )
        if report.failed:
            raise CommandError(summary + " Run the same command again to retry: it resumes.", returncode=1)
        self.stdout.write(summary)

    # delete-prefix ----------------------------------------------------------------------

    def delete_prefix(self, *, prefix: str, yes: bool, **options: Any) -> None:
        storage = KeyedStorage()
        where = f"in bucket {config.current().bucket}" if storage.backend == "s3" else "on the local disk"
        if not yes:
            names = list_prefix(backends.storage_backend(config.current()), prefix)
            for name in names:
                self.stdout.write(f"would delete {name}")
            self.stdout.write(f"{len(names)} objects under {prefix!r} {where}. Nothing deleted: add --yes.")
            return
        names = storage.delete_prefix(prefix)
        for name in names:
            self.stdout.write(f"deleted {name}")
        self.stdout.write(f"Deleted {len(names)} objects under {prefix!r} {where}.")

    # variants ---------------------------------------------------------------------------

    def variants(
        self,
        *,
        model: str | None,
        field: str | None,
        missing: bool,
        dry_run: bool,
        enqueue: bool,
        progress: bool | None,
        **options: Any,
    ) -> None:
        chosen = targets(model, field)
        if not chosen:
            self.stdout.write("No KeyedImageField declares variants: there is nothing to build.")
            return
        job = (EnqueueVariants if enqueue else BuildVariants)(chosen, missing=missing, dry_run=dry_run)
        total = self._announce_variants(job, missing=missing, dry_run=dry_run, enqueue=enqueue)
        verbose = options["verbosity"] >= 2
        out, show = self._progress_output(progress)
        from tqdm import tqdm

        bar = tqdm(total=total, unit=" rows", desc="rows", file=out, disable=not show)
        verb = (
            ("would enqueue" if dry_run else "enqueued")
            if enqueue
            else ("would build" if dry_run else "built")
        )

        def on_row(row: Row, outcome: Outcome) -> None:
            bar.update(1)
            if outcome.failed:
                bar.write(f"failed: {row.target.label} pk={row.pk} {row.name}: {outcome.failed}", file=out)
            elif outcome.replaced:
                bar.write(f"replaced meanwhile, left alone: {row.target.label} pk={row.pk}", file=out)
            elif dry_run or verbose:
                for name in outcome.built:
                    bar.write(f"{verb}: {name}", file=out)

        try:
            with bar:
                report = job.run(on_row)
        except BaseException:
            done = _variants_summary(job.report, dry_run, enqueue)
            self.stderr.write(
                f"Stopped after {job.report.rows} of {total} rows. {done} "
                "Run again with --missing to do what is left."
            )
            raise
        summary = _variants_summary(report, dry_run, enqueue)
        if report.failed:
            raise CommandError(
                summary
                + " Fix or clear those files, then run again with --missing: it does only what is left.",
                returncode=1,
            )
        self.stdout.write(summary)

    def _announce_variants(self, job: BuildVariants, *, missing: bool, dry_run: bool, enqueue: bool) -> int:
        """What the run is about to do, field by field; the number of rows it goes through."""
        counts = {target: job.count(target) for target in job.targets}
        total = sum(counts.values())
        what = "the variants not stored yet are" if missing else "every declared variant is"
        how = "enqueued for a worker (TASKS['default'])" if enqueue else ("built" if missing else "rebuilt")
        self.stdout.write(f"{'Dry run: ' if dry_run else ''}{total} rows with a file; {what} {how}:")
        for target, rows in counts.items():
            self.stdout.write(f"  {target.label}: {rows} rows, variants {', '.join(target.field.variants)}")
        return total

    # orphans ----------------------------------------------------------------------------

    def orphans(
        self,
        *,
        older_than: str,
        include: list[str],
        delete: bool,
        trust_database: bool,
        progress: bool | None,
        **options: Any,
    ) -> None:
        grace = orphans.parse_duration(older_than)
        current = config.current()
        job = orphans.Audit(
            backends.for_config(current),
            grace=grace,
            include=include,
            delete=delete,
            trust_database=trust_database,
        )
        age = orphans.describe(grace)
        self._announce_audit(job, current, age, delete, verbose=options["verbosity"] >= 2)
        out, show = self._progress_output(progress)
        from tqdm import tqdm

        bar = tqdm(unit=" objects", desc="objects", file=out, disable=not show)
        findings = getattr(self.stdout, "_out", self.stdout)  # the stream itself: tqdm adds the newline
        try:
            with bar:
                report = job.run(
                    lambda finding: bar.write(_finding_line(finding), file=findings),
                    on_object=lambda stored: bar.update(1),
                )
        except BaseException as error:
            self.stderr.write(
                f"Stopped after {job.report.listed} objects. {_orphans_summary(job.report, delete)}"
            )
            _refuse_stopped_audit(job, error)
            raise
        self._tell_spared(report, age, delete)
        self.stdout.write(_orphans_summary(report, delete))

    def _announce_audit(
        self, job: Audit, current: config.Config, age: str, delete: bool, *, verbose: bool
    ) -> None:
        """What is audited against what: the store, the fields, and the fields it cannot read."""
        where = f"bucket {current.bucket}" if current.backend == "s3" else f"{current.media_root} (local)"
        self.stdout.write(
            f"Auditing {where} against {len(job.sources)} file fields: objects older than {age} that "
            f"no row references{', deleted' if delete else ''}; rows whose object is missing."
        )
        if verbose:
            for source in job.sources:
                self.stdout.write(f"  {source.label}: {source.pattern or '(upload_to is a function)'}")
        for source in job.unreadable:
            self.stderr.write(
                f"note: {source.label}'s upload_to is a function keyed_storage cannot read: its rows "
                "count as references, but its objects are audited only under --include."
            )

    def _tell_spared(self, report: AuditReport, age: str, delete: bool) -> None:
        """What the audit left alone and why, and a warning when --delete would refuse."""
        if report.recent:
            self.stdout.write(
                f"Spared {_count(report.recent, 'unreferenced object')} written in the last {age}."
            )
        if report.recent_unfinished:
            self.stdout.write(
                f"Spared {_count(report.recent_unfinished, 'unfinished upload')} begun in the last {age}."
            )
        if report.in_use:
            self.stdout.write(
                f"Spared {_count(report.in_use, 'temporary file')} of writes that may be in progress."
            )
        if report.not_audited:
            keys = ", ".join(report.not_audited_keys)
            self.stdout.write(
                f"Not audited: {_count(report.not_audited, 'object')} under keys no file field writes "
                f"({keys}{', ...' if report.more_not_audited_keys else ''}), "
                "such as upload()'s; name a key with --include to audit it."
            )
        if not delete and (reason := orphans.mismatch(report)):
            self.stdout.write(
                f"Warning: {reason} --delete would refuse to delete; {orphans.TRUST_FLAG} overrides."
            )


def _finding_line(finding: orphans.Finding) -> str:
    """The line `orphans` prints for one finding."""
    if finding.kind == "orphan":
        modified = f"{finding.modified:%Y-%m-%d %H:%M} UTC" if finding.modified else "?"
        return f"orphan: {finding.name} ({filesizeformat(finding.size)}, {modified})"
    if finding.kind == "missing":
        assert finding.source is not None
        return (
            f"missing: {finding.source.model._meta.label} pk={finding.pk} "
            f"{finding.source.field.name}: {finding.name}"
        )
    if finding.kind == "unfinished":
        return (
            f"unfinished upload: {finding.name} (begun {finding.modified:%Y-%m-%d %H:%M} UTC, "
            f"upload id {finding.pk})"
        )
    return f"kept, a row references it now: {finding.name}"


def _refuse_stopped_audit(job: orphans.Audit, error: BaseException) -> None:
    """A CommandError for an audit stopped by the database, or by a refusal to delete; the
    caller re-raises anything else as it is."""
    if isinstance(error, DatabaseError):
        raise CommandError(f"The database could not be read: {error}") from None
    if isinstance(error, orphans.WrongDatabase):
        deleted = job.report.orphans.deleted
        raise CommandError(
            f"Refused to delete. {error} "
            + (f"Deleted {deleted} before it showed. " if deleted else "Nothing deleted. ")
            + f"If it is the right one, run again with {orphans.TRUST_FLAG}."
        ) from None


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}{'' if number == 1 else 's'}"


def _orphans_summary(report: orphans.Report, delete: bool) -> str:
    shown = [section for section in report.sections if section.count or section.said_when_none]
    summary = "; ".join(section.summary() for section in shown) + "."
    if report.kept:
        summary += f" {report.kept} kept: a row referenced them by the time of deleting."
    unfinished = report.unfinished
    if delete:
        summary += f" Deleted {report.orphans.deleted}."
        return summary + (f" Aborted {unfinished.deleted}." if unfinished.count else "")
    return summary + (" Nothing deleted: add --delete." if report.orphans.count or unfinished.count else "")


def _progress_options(parser: argparse.ArgumentParser, verbose_help: str) -> None:
    """--progress/--no-progress and -v of a long-running subcommand."""
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Show progress bars (default: when standard error is a terminal).",
    )
    # Also accepted after the subcommand; SUPPRESS keeps a -v given before it.
    parser.add_argument(
        "-v",
        "--verbosity",
        type=int,
        choices=[0, 1, 2, 3],
        default=argparse.SUPPRESS,
        help=verbose_help,
    )


def _variants_summary(report: Report, dry_run: bool, enqueue: bool = False) -> str:
    if enqueue:
        verb = "Would enqueue" if dry_run else "Enqueued"
        return (
            f"{verb} {report.built} variants of {report.rows_built} rows for a worker, "
            f"skipped {report.present} already there"
            + (f", {report.replaced} replaced meanwhile" if report.replaced else "")
            + f", {len(report.failed)} failed."
        )
    verb, sizes = ("Would build", "would set") if dry_run else ("Built", "set")
    written = "" if dry_run else f" ({filesizeformat(report.bytes)})"
    replaced = f", {report.replaced} replaced meanwhile" if report.replaced else ""
    return (
        f"{verb} {report.built} variants{written} for {report.rows} rows, skipped {report.present} "
        f"already there, {sizes} {report.sizes} sizes{replaced}, {len(report.failed)} failed."
    )


def _bars(
    out: SupportsWrite[str], files: int, total: int, show: bool
) -> tuple[tqdm[NoReturn], tqdm[NoReturn]]:
    from tqdm import tqdm

    files_bar = tqdm(total=files, unit=" files", desc="files", file=out, disable=not show, position=0)
    bytes_bar = tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc="bytes",
        file=out,
        disable=not show,
        position=1,
    )
    return files_bar, bytes_bar
