"""Cache-Control of stored files: a year and immutable where bytes never change, revalidated elsewhere.

A name keyed_storage issued (<key>/<token>/<filename>, and the image variants stored beside it
under the same token) is never written twice: a new upload gets a new token and so a new URL.
Browsers and CDNs may keep such a file for a year without asking again. A name stored with
exact=True, or one keyed_storage did not make, can be written again with other bytes under
the same URL, so caches must revalidate it (and get a 304 while it is unchanged).

What tokened objects get is config.cache_control: KEYED_STORAGE_CACHE_CONTROL, or by default a
year and immutable (variables.default_cache_control, beside the variable's row).

The policy rides on the object itself: in S3 as the object's Cache-Control, sent with its PUT
(no request of its own); on the local disk by the view that serves it (keyed_storage.serving.responses).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Config

#: Objects whose bytes can change under their name: caches keep them but ask before each use.
REVALIDATE = "no-cache"
#: The same for a private bucket's objects: no shared cache (CDN, proxy) may keep them at all.
PRIVATE_REVALIDATE = "private, no-cache"


def cache_control(config: Config, *, immutable: bool) -> str:
    """The Cache-Control an object gets: `immutable` when its name's bytes can never change."""
    if immutable:
        return config.cache_control
    return PRIVATE_REVALIDATE if config.private else REVALIDATE
