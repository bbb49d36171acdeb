"""Local disk: files under MEDIA_ROOT, links made absolute from the base URL or the request."""

from __future__ import annotations

import os
from urllib.parse import quote

from django.core.files.storage import FileSystemStorage

from ..config import DEFAULT_LOCAL_ORIGIN, Config
from ..keys import is_token
from ..origin import current_origin


def url_path(name: str) -> str:
    """Percent-encode an object name once for a URL path ('+' and '#' included)."""
    return quote(name, safe="/~")


class LocalBackend(FileSystemStorage):
    backend = "local"

    def __init__(self, config: Config):
        # Uniqueness is decided by KeyedStorage.get_available_name; the backend writes where told.
        super().__init__(location=config.media_root, base_url=config.media_url, allow_overwrite=True)
        self.keyed_config = config
        self._absolute_media_url = "://" in config.media_url

    def url(self, name: str) -> str:
        if self._absolute_media_url:
            return self.keyed_config.media_url + url_path(name)
        origin = self.keyed_config.base_url or current_origin() or DEFAULT_LOCAL_ORIGIN
        return origin + self.keyed_config.media_url + url_path(name)

    def delete(self, name: str) -> None:
        super().delete(name)
        # An upload's token directory holds that one file; remove it so no empty
        # directories pile up under a key that is replaced every day.
        parent = os.path.dirname(self.path(name))
        if is_token(os.path.basename(parent)):
            try:
                os.rmdir(parent)
            except OSError:
                pass  # not empty: someone else's file is there, so it stays
