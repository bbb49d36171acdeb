"""Settings of the docs' project: local mode, a temporary MEDIA_ROOT, an in-memory SQLite database.

These are the settings the README's "Add it to your project" asks for, plus what a build needs
(a secret key, a throwaway database); the examples on the pages run against them.
"""

import importlib.util
import tempfile
from pathlib import Path

SECRET_KEY = "docs-only, not secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost"]
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "keyed_storage",
    "docsite",
]
if importlib.util.find_spec("django.tasks") is None and importlib.util.find_spec("django_tasks"):
    # Django 5.2: the backport of django.tasks, as docs/howto/background.rst installs it (its
    # app forgets the task backends when an example changes TASKS with override_settings).
    INSTALLED_APPS.append("django_tasks")

MIDDLEWARE = [
    "keyed_storage.serving.middleware.RequestOriginMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "docsite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).resolve().parent / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A directory of its own for every build, so no example sees another build's files.
MEDIA_ROOT = tempfile.mkdtemp(prefix="keyed-storage-docs-")
MEDIA_URL = "/media/"
STATIC_URL = "/static/"

# Links made outside a request (upload() in an example) start with this origin; inside a
# request, RequestOriginMiddleware gives the request's own (http://testserver in the examples).
KEYED_STORAGE = {"KEYED_STORAGE_BASE_URL": "http://testserver"}

STORAGES = {
    "default": {"BACKEND": "keyed_storage.KeyedStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
