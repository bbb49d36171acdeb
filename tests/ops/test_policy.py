"""`keyed_storage policy`: least privilege that is enough, and a bucket policy for public links."""

from __future__ import annotations

import json

import pytest
import requests
from django.core.files.base import ContentFile

from keyed_storage import KeyedStorage, upload
from keyed_storage.ops.policy import BUCKET_ACTIONS, OBJECT_ACTIONS, iam_policy, lifecycle_configuration

from ..helpers import fetch
from ..ops_helpers import iam_enforcing_s3, run

BUCKET_ACTIONS_WANTED = {
    "s3:ListBucket",
    "s3:GetBucketLocation",
    "s3:ListBucketMultipartUploads",  # find unfinished multipart uploads
    "s3:GetLifecycleConfiguration",  # doctor checks that a rule aborts them
    "s3:GetBucketCORS",  # doctor checks that the site's pages may send direct uploads
}
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
        f"arn:aws:s3:::{s3.bucket}": BUCKET_ACTIONS_WANTED,
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
    assert set(documents) == {"IAMPolicy", "BucketPolicy", "LifecycleConfiguration"}
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


def test_the_iam_policy_is_enough_for_everything_the_app_does(env):
    """Against a server that enforces IAM, the printed policy lets the app do all it does.

    moto answers 500 to anonymous and presigned GETs while it enforces IAM, so the bytes are read
    back through the storage (s3:GetObject) rather than through the links; the links themselves
    are fetched by the other tests.
    """
    bucket = "policy-check"
    with iam_enforcing_s3(bucket, {"app": iam_policy(bucket), "reader": READ_ONLY}) as (endpoint, keys):
        env(
            BUCKET_NAME=bucket,
            AWS_ENDPOINT_URL_S3=endpoint,
            AWS_KEY=keys["app"][0],
            AWS_SECRET=keys["app"][1],
        )
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
        env(AWS_KEY=keys["reader"][0], AWS_SECRET=keys["reader"][1])
        with pytest.raises(Exception, match="AccessDenied"):
            upload(ContentFile(b"three", name="a.txt"), "users/1/avatar")


def test_action_lists_match_the_issue():
    assert set(BUCKET_ACTIONS) == BUCKET_ACTIONS_WANTED
    assert set(OBJECT_ACTIONS) == OBJECT_ACTIONS_WANTED


# Abandoned multipart uploads (issue 14) ------------------------------------------------------


def test_prints_a_lifecycle_rule_that_aborts_abandoned_multipart_uploads(s3):
    out, err, code = run("policy")
    assert code == 0
    assert json.loads(out)["LifecycleConfiguration"] == lifecycle_configuration()
    assert f"aws s3api put-bucket-lifecycle-configuration --bucket {s3.bucket}" in err
    assert "--only lifecycle" in err
    assert "replaces the bucket's lifecycle rules" in err

    only, _, code = run("policy", "--only", "lifecycle")
    assert code == 0
    (rule,) = json.loads(only)["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert rule["Filter"] == {"Prefix": ""}  # the whole bucket
    assert "Expiration" not in rule  # it never deletes an object


def test_the_printed_lifecycle_configuration_is_one_the_server_takes(s3):
    only, _, _ = run("policy", "--only", "lifecycle")
    s3.client.put_bucket_lifecycle_configuration(Bucket=s3.bucket, LifecycleConfiguration=json.loads(only))
    (rule,) = s3.client.get_bucket_lifecycle_configuration(Bucket=s3.bucket)["Rules"]
    assert rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1
    assert rule["Status"] == "Enabled"


def test_a_lifecycle_rule_needs_at_least_a_day():
    with pytest.raises(ValueError, match="at least 1, not 0"):
        lifecycle_configuration(0)


def test_the_iam_policy_lets_the_app_clean_up_multipart_uploads(monkeypatch):
    """Against a server that enforces IAM: list a bucket's unfinished uploads and their parts,
    abort one, and read the lifecycle rules, with the printed policy and nothing more."""
    import boto3

    bucket = "policy-multipart"
    with iam_enforcing_s3(bucket, {"app": iam_policy(bucket), "reader": READ_ONLY}) as (endpoint, keys):

        def client(user: str):
            key, secret = keys[user]
            return boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id=key,
                aws_secret_access_key=secret,
            )

        app = client("app")
        upload_id = app.create_multipart_upload(Bucket=bucket, Key="events/1/video/talk.mp4")["UploadId"]
        app.upload_part(
            Bucket=bucket, Key="events/1/video/talk.mp4", UploadId=upload_id, PartNumber=1, Body=b"part"
        )
        listed = app.list_multipart_uploads(Bucket=bucket)["Uploads"]
        assert [entry["UploadId"] for entry in listed] == [upload_id]
        parts = app.list_parts(Bucket=bucket, Key="events/1/video/talk.mp4", UploadId=upload_id)["Parts"]
        assert [part["PartNumber"] for part in parts] == [1]
        app.abort_multipart_upload(Bucket=bucket, Key="events/1/video/talk.mp4", UploadId=upload_id)
        assert app.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        with pytest.raises(Exception, match="NoSuchLifecycleConfiguration"):  # allowed, and none set
            app.get_bucket_lifecycle_configuration(Bucket=bucket)

        # The same server refuses a user with less: the checks above can fail.
        with pytest.raises(Exception, match="AccessDenied"):
            client("reader").list_multipart_uploads(Bucket=bucket)


def test_the_cors_rule_lets_the_site_s_pages_post_and_put(s3):
    out, _, code = run("policy", "--only", "cors", "--origin", "https://events.example.org")
    assert code == 0
    assert json.loads(out) == {
        "CORSRules": [
            {
                "AllowedOrigins": ["https://events.example.org"],
                "AllowedMethods": ["POST", "PUT"],
                "AllowedHeaders": ["*"],
                "MaxAgeSeconds": 3600,
            }
        ]
    }
    # The bucket takes it as it is printed.
    s3.client.put_bucket_cors(Bucket=s3.bucket, CORSConfiguration=json.loads(out))
    assert s3.client.get_bucket_cors(Bucket=s3.bucket)["CORSRules"][0]["AllowedMethods"] == ["POST", "PUT"]


def test_the_cors_rule_takes_the_base_url_and_says_how_to_apply_it(s3, env):
    env(KEYED_STORAGE_BASE_URL="https://events.example.org")
    out, err, code = run("policy")
    assert code == 0
    assert json.loads(out)["CORSConfiguration"]["CORSRules"][0]["AllowedOrigins"] == [
        "https://events.example.org"
    ]
    assert f"aws s3api put-bucket-cors --bucket {s3.bucket}" in err


@pytest.mark.parametrize("origin", ["https://example.org/", "example.org", "ftp://example.org", "https://"])
def test_a_cors_origin_is_an_origin(s3, origin):
    _, err, code = run("policy", "--only", "cors", "--origin", origin)
    assert code != 0
    assert f"{origin!r} is not an origin" in err


def test_the_cors_rule_needs_an_origin(s3):
    _, err, code = run("policy", "--only", "cors")
    assert code != 0
    assert "--only cors needs the site's origin" in err
