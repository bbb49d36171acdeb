"""What the home page tells a visitor: where this demo keeps its files, how to sign in, what to try."""

from typing import Any

from django.contrib.auth import get_user_model

from keyed_storage import config

# Created by `manage.py demo_data` (which `make demo` runs); for the demo only.
ADMIN_USER, ADMIN_PASSWORD = "admin", "admin"


def about_this_demo() -> dict[str, Any]:
    """The facts the home page states, read from the configuration keyed_storage itself uses.

    Nothing secret is shown: the bucket and the endpoint say where files go, the key pair stays
    in the environment.
    """
    current = config.current()
    return {
        "backend": current.backend,
        "bucket": current.bucket,
        "endpoint": current.endpoint_url,
        "region": current.region,
        "private": current.private,
        "media_root": current.media_root,
        "media_url": current.media_url,
        "admin_user": ADMIN_USER,
        "admin_password": ADMIN_PASSWORD,
        "admin_exists": get_user_model().objects.filter(username=ADMIN_USER).exists(),
    }
