"""What every doctest group of the pages starts from: an empty database with its tables."""

from django.core.management import call_command


def fresh_database() -> None:
    # The database is in memory and lives as long as the build; flushing makes each group
    # independent of the ones before it. The tables come from the models (run_syncdb), as
    # docsite has no migrations.
    call_command("migrate", run_syncdb=True, verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
