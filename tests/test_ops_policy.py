"""`keyed_storage policy`: least privilege that is enough, and a bucket policy for public links."""

from __future__ import annotations

import json

import pytest
import requests
from django.core.files.base import ContentFile

from keyed_storage import KeyedStorage, config, upload
from keyed_storage.ops.policy import BUCKET_ACTIONS, OBJECT_ACTIONS, iam_policy

from .helpers import fetch
from .ops_helpers import iam_enforcing_s3, run

OBJECT_ACTIONS_WANTED = {
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
}


READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::*"}],
}


def statements(document: dict) -> dict[str, set[str]]:
    """{resource: actions} of a policy document."""
    found: dict[str, set[str]] = {}
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        found.setdefault(statement["Resource"], set()).update(
            [actions] if isinstance(actions, str) else actions
        )
    return found


def test_iam_policy_is_least_privilege_for_the_configured_bucket(s3):
    out, err, code = run("policy")
    assert code == 0
    document = json.loads(out)["IAMPolicy"]
    assert document["Version"] == "2012-10-17"
    assert statements(document) == {
        f"arn:aws:s3:::{s3.bucket}": {"s3:ListBucket", "s3:GetBucketLocation"},
        f"arn:aws:s3:::{s3.bucket}/*": OBJECT_ACTIONS_WANTED,
    }
    assert "*" not in "".join(a for acts in statements(document).values() for a in acts)
    assert "ListAllMyBuckets" not in out
    assert "BucketPolicy" not in out
    assert "put-user-policy" in err


def test_bucket_option_without_any_configuration():
    out, _, code = run("policy", "--bucket", "media.example.org", "--only", "iam")
    assert code == 0
    assert json.loads(out) == iam_policy("media.example.org")
    assert "arn:aws:s3:::media.example.org/*" in out


def test_needs_a_valid_bucket():
    _, err, code = run("policy")
    assert code != 0 and "--bucket" in err
    _, err, code = run("policy", "--bucket", "Not_A_Bucket")
    assert code != 0 and "not a valid S3 bucket name" in err


def test_put_object_acl_only_when_uploads_send_an_acl(s3, settings):
    assert "s3:PutObjectAcl" not in run("policy")[0]
    settings.AWS_S3_OBJECT_PARAMETERS = {"ACL": "public-read"}
    out, err, _ = run("policy", "--bucket", "acl-bucket")
    assert "s3:PutObjectAcl" in statements(json.loads(out)["IAMPolicy"])["arn:aws:s3:::acl-bucket/*"]
    assert "ACL" in err


def test_public_read_prints_a_bucket_policy_and_warns_about_block_public_access(s3):
    out, err, code = run("policy", "--public-read", "users", "events/7/")
    assert code == 0
    documents = json.loads(out)
    assert set(documents) == {"IAMPolicy", "BucketPolicy"}
    (statement,) = documents["BucketPolicy"]["Statement"]
    assert statement["Principal"] == "*" and statement["Action"] == "s3:GetObject"
    assert sorted(statement["Resource"]) == [
        f"arn:aws:s3:::{s3.bucket}/events/7/*",
        f"arn:aws:s3:::{s3.bucket}/users/*",
    ]
    assert "Block Public Access" in err

    only, _, _ = run("policy", "--public-read", "users", "events/7/", "--only", "bucket")
    assert json.loads(only) == documents["BucketPolicy"]


def test_only_bucket_needs_public_read(s3):
    _, err, code = run("policy", "--only", "bucket")
    assert code != 0 and "--public-read" in err


def test_public_read_refuses_a_prefix_that_is_not_a_key(s3):
    _, err, code = run("policy", "--public-read", "../users")
    assert code != 0 and "Refused key" in err


def test_the_bucket_policy_opens_exactly_its_prefixes(s3):
    """Applied to a real bucket, the printed policy lets anyone read users/ and nothing else."""
    out, _, _ = run("policy", "--public-read", "users", "--only", "bucket")
    s3.client.put_bucket_policy(Bucket=s3.bucket, Policy=out)
    avatar = upload(ContentFile(b"avatar", name="a.png"), "users/1/avatar")
    logo = upload(ContentFile(b"logo", name="l.png"), "events/1/logo")

    assert fetch(avatar) == b"avatar"
    assert requests.get(logo, timeout=10).status_code == 403


def test_the_iam_policy_is_enough_for_everything_the_app_does(monkeypatch):
    """Against a server that enforces IAM, the printed policy lets the app do all it does.

    moto answers 500 to anonymous and presigned GETs while it enforces IAM, so the bytes are read
    back through the storage (s3:GetObject) rather than through the links; the links themselves
    are fetched by the other tests.
    """
    bucket = "policy-check"
    with iam_enforcing_s3(bucket, {"app": iam_policy(bucket), "reader": READ_ONLY}) as (endpoint, keys):
        monkeypatch.setenv("BUCKET_NAME", bucket)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        monkeypatch.setenv("AWS_KEY", keys["app"][0])
        monkeypatch.setenv("AWS_SECRET", keys["app"][1])
        config.reset()
        storage = KeyedStorage()
        first = upload(ContentFile(b"one", name="a.txt"), "users/1/avatar")
        second = upload(ContentFile(b"two", name="a.txt"), "users/1/avatar")  # lists and deletes the first
        (name,) = storage.earlier_objects("users/1/avatar")
        assert second.endswith(name) and not first.endswith(name)
        with storage.open(name) as stored:
            assert stored.read() == b"two"
        assert storage.size(name) == 3
        # Not delete_prefix: moto checks its DeleteObjects against the bucket's ARN, where AWS
        # checks s3:DeleteObject on each object's ARN, which the policy grants.
        storage.delete(name)
        assert not storage.exists(name)

        # The same server refuses a user with less: the checks above can fail.
        monkeypatch.setenv("AWS_KEY", keys["reader"][0])
        monkeypatch.setenv("AWS_SECRET", keys["reader"][1])
        config.reset()
        with pytest.raises(Exception, match="AccessDenied"):
            upload(ContentFile(b"three", name="a.txt"), "users/1/avatar")


def test_action_lists_match_the_issue():
    assert set(BUCKET_ACTIONS) == {"s3:ListBucket", "s3:GetBucketLocation"}
    assert set(OBJECT_ACTIONS) == OBJECT_ACTIONS_WANTED
