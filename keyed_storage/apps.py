"""Django glue: system checks and primary keys for new instances."""

from django.apps import AppConfig


class KeyedStorageConfig(AppConfig):
    name = "keyed_storage"
    verbose_name = "Keyed storage"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (checks registers on import)
        from .lifecycle import primary_keys, replacement

        primary_keys.connect()
        replacement.connect()
