"""ASGI entry point of the demo: `uvicorn testproject.asgi:application` (run from testproject/)."""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
application = get_asgi_application()

# What `runserver` does for WSGI when DEBUG is on: STATIC_URL answered from the apps' static/
# folders (the admin's CSS, keyed_storage's direct-upload script). A real site collects its
# static files and lets the web server, or a CDN, send them.
if settings.DEBUG:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    application = ASGIStaticFilesHandler(application)
