"""System checks: `manage.py check` fails on a half configuration, naming the variable."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Warning, register

from . import config


@register("keyed_storage")
def check_configuration(app_configs=None, **kwargs):
    current, problems = config.inspect()
    messages = [
        Error(problem.message, hint=problem.hint or None, id=problem.id, obj=problem.variable)
        for problem in problems
    ]
    if current and current.backend == "local" and not current.base_url and not settings.DEBUG:
        if "://" not in current.media_url:
            messages.append(
                Warning(
                    "KEYED_STORAGE_BASE_URL is not set: local links made outside a request "
                    f"(background jobs, emails, management commands) will start with "
                    f"{config.DEFAULT_LOCAL_ORIGIN}.",
                    hint="Set KEYED_STORAGE_BASE_URL to this site's origin, e.g. https://example.org.",
                    id="keyed_storage.W001",
                    obj="KEYED_STORAGE_BASE_URL",
                )
            )
    return messages
