"""Use an installed keyed_storage outside the checkout: configure Django, store a file, read it back."""

import re
import sys
import tempfile
import types

import django
from django.conf import settings

media = tempfile.mkdtemp()
settings.configure(
    INSTALLED_APPS=["keyed_storage"],
    MEDIA_ROOT=media,
    MEDIA_URL="/media/",
    ROOT_URLCONF="keyed_storage.urls",
    # Outside a request, local links take their origin from here (or raise NoOrigin).
    KEYED_STORAGE={"KEYED_STORAGE_BASE_URL": "https://smoke.example.org"},
    DATABASES={},
)
django.setup()

import keyed_storage  # noqa: E402
from keyed_storage import KeyedStorage, key_template, upload  # noqa: E402

assert keyed_storage.__file__.find("/site-packages/") > 0, keyed_storage.__file__
assert KeyedStorage().backend == "local"
url = upload(open(__file__, "rb"), "ci/smoke/file")
assert url.startswith("https://smoke.example.org/media/ci/smoke/file/"), url
# A key template names a file under its key, a fresh token and the safe filename.
name = key_template("events/{id}/logo")(types.SimpleNamespace(id=7), "Logo Final.png")
assert re.fullmatch(r"events/7/logo/[0-9a-f]{32}/Logo_Final\.png", name), name

# The management command ships in the wheel and runs: the IAM policy for a bucket.
import io  # noqa: E402
import json  # noqa: E402

from django.core.management import call_command  # noqa: E402

out = io.StringIO()
call_command("keyed_storage", "policy", "--bucket", "smoke-bucket", "--only", "iam", stdout=out)
actions = {a for s in json.loads(out.getvalue())["Statement"] for a in s["Action"]}
assert "s3:PutObject" in actions and not any("*" in a for a in actions), actions
version = f"Python {sys.version.split()[0]}, Django {django.__version__}"
print(f"{sys.argv[1]} ({version}): installed, imported and stored a file ({url})")
