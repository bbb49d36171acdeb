"""Settings of the demo event site. Storage is chosen by the environment alone (docs: Configuration)."""

import importlib.util
import os
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "keyed_storage",
    "events",
    # The task queue of `make demo` and of the tests that run a real worker (see TASKS below).
    "django_tasks_db",
]
if importlib.util.find_spec("django.tasks") is None:
    # Django 5.2: the backport of django.tasks, installed as an app for its system checks and
    # for the receiver that forgets the task backends when a test changes TASKS.
    INSTALLED_APPS.append("django_tasks")

MIDDLEWARE = [
    # Local links made while a request is handled start with its origin (WSGI and ASGI).
    "keyed_storage.serving.middleware.RequestOriginMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "testproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "testproject.wsgi.application"

# SQLite for the demo and by default in tests. KEYED_STORAGE_TEST_DB=postgres (set by the
# test matrix's PostgreSQL entries) selects PostgreSQL, which refuses what SQLite forgives
# (over-long names, for one); the test run starts a throwaway cluster and fills in where it
# listens (tests/postgres.py) before the test database is created. DEMO_DB names the SQLite
# file of a site of its own (make demo-s3, the uvicorn site of the ASGI tests), so it always
# means SQLite.
TEST_DB = os.environ.get("KEYED_STORAGE_TEST_DB", "sqlite")
if TEST_DB not in ("sqlite", "postgres"):
    raise ImproperlyConfigured(f"KEYED_STORAGE_TEST_DB={TEST_DB!r}: use 'sqlite' or 'postgres'.")
# KEYED_STORAGE_TEST_DB_NAME: the name of the PostgreSQL database, for a process the tests
# start against their own test database (the task worker of tests/tasks_helpers.py, which
# also sets libpq's PGHOST, PGPORT and PGUSER to reach the run's throwaway cluster).
if TEST_DB == "postgres" and "DEMO_DB" not in os.environ:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("KEYED_STORAGE_TEST_DB_NAME", "keyed_storage"),
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("DEMO_DB", BASE_DIR / "db.sqlite3"),
            # The tests' database is a file, not memory: Django's live server shares one
            # in-memory connection among all its request threads, and concurrent requests
            # then read each other's rows. A file gives each thread its own connection.
            "TEST": {"NAME": os.path.join(tempfile.gettempdir(), f"keyed-storage-{os.getpid()}.sqlite3")},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"

STATIC_URL = "static/"

# Every FileField without its own storage goes through keyed_storage too.
STORAGES = {
    "default": {"BACKEND": "keyed_storage.KeyedStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MEDIA_ROOT = os.environ.get("DEMO_MEDIA_ROOT", BASE_DIR / "media")
MEDIA_URL = "/media/"

LOGIN_URL = "login"

# Background work (Django's Tasks framework; the django-tasks backport on Django 5.2). Unset,
# Django's default backend runs each task at once, in the process that enqueues it, as the
# tests expect. KEYED_STORAGE_DEMO_TASKS=database (make demo, demo-s3, demo-asgi, and the
# tests' `worker` fixture) stores tasks in the database, where `manage.py db_worker` runs them.
DEMO_TASKS = os.environ.get("KEYED_STORAGE_DEMO_TASKS", "immediate")
if DEMO_TASKS == "database":
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    # Each task's outcome, with a failure's traceback, in the worker's output whatever DEBUG says:
    # on Django 6 the "django.tasks" logger is under "django", whose console handler Django
    # limits to DEBUG, and db_worker then adds no handler of its own ("django_tasks": the backport).
    LOGGING = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"tasks": {"class": "logging.StreamHandler"}},
        "loggers": {
            name: {"handlers": ["tasks"], "level": "INFO", "propagate": False}
            for name in ("django.tasks", "django_tasks")
        },
    }
elif DEMO_TASKS != "immediate":
    raise ImproperlyConfigured(
        f"KEYED_STORAGE_DEMO_TASKS={DEMO_TASKS!r}: use 'database' (a worker runs the tasks) or "
        "'immediate' (the default: each task runs when it is enqueued)."
    )
