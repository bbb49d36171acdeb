"""`keyed_storage doctor`: which backend and why, then proof, or ✗ with the cause and the fix."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from keyed_storage import variables
from keyed_storage.ops import doctor
from keyed_storage.ops.policy import cors_configuration, iam_policy, lifecycle_configuration

from ..helpers import TEST_KEY, TEST_SECRET
from ..ops_helpers import free_port, iam_enforcing_s3, run

pytestmark = pytest.mark.django_db(transaction=True)


def failed_steps(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("✗")]


def assert_all_passed(out: str, code: int) -> None:
    assert code == 0, out
    assert "✗" not in out
    assert out.count("✓") >= 5
    assert "checks passed" in out


def test_s3_success_says_why_and_cleans_up(s3):
    out, _, code = run("doctor")
    assert_all_passed(out, code)
    assert "Backend: s3, because BUCKET_NAME is set (in the environment)" in out
    assert f"BUCKET_NAME={s3.bucket}  (environment)" in out
    assert f"AWS_KEY={TEST_KEY}" in out
    assert "AWS_SECRET=(set, not shown)" in out
    assert f"✓ GET {s3.endpoint}/{s3.bucket}/keyed-storage-doctor/" in out
    assert "anonymous" in out and "same bytes" in out
    assert s3.keys() == []  # the probe is gone


def test_s3_private_fetches_the_presigned_link(s3, env):
    s3.client.delete_bucket_policy(Bucket=s3.bucket)  # nothing public: only the signature opens it
    env(KEYED_STORAGE_PRIVATE="1")
    out, _, code = run("doctor")
    assert_all_passed(out, code)
    assert "(presigned, the link the app hands out): 200, same bytes" in out
    assert "X-Amz-Signature" not in out


def test_settings_are_named_as_the_source(s3, env, settings):
    env(AWS_REGION=None)
    settings.KEYED_STORAGE = {"AWS_REGION": "us-east-1"}
    out, _, code = run("doctor")
    assert code == 0, out
    assert "AWS_REGION=us-east-1  (settings)" in out


def test_credentials_from_boto3s_chain(s3, env):
    env(AWS_KEY=None, AWS_SECRET=None, AWS_ACCESS_KEY_ID=TEST_KEY, AWS_SECRET_ACCESS_KEY=TEST_SECRET)
    out, _, code = run("doctor")
    assert_all_passed(out, code)
    assert f"✓ credentials: access key {TEST_KEY} from boto3's chain (env)" in out


def test_no_credentials_at_all(s3, env):
    env(AWS_KEY=None, AWS_SECRET=None)
    out, _, code = run("doctor")
    assert code == 1
    assert failed_steps(out) == ["✗ credentials"]
    assert "Set AWS_KEY and AWS_SECRET, or run with an IAM role" in out


def test_custom_domain_link_is_the_one_fetched(s3, env):
    # A "CDN" that is the S3 server itself, path-style: the link doctor fetches is the custom one.
    env(KEYED_STORAGE_CUSTOM_DOMAIN=f"{s3.endpoint}/{s3.bucket}")
    out, _, code = run("doctor")
    assert_all_passed(out, code)
    assert f"✓ GET {s3.endpoint}/{s3.bucket}/keyed-storage-doctor/" in out


@pytest.mark.moto_only(
    "SeaweedFS answers an anonymous GET of a bucket that does not exist with 403, not S3's 404, "
    "so doctor blames the bucket policy instead of the CDN's origin"
)
def test_custom_domain_that_does_not_serve_the_bucket(s3, env):
    env(KEYED_STORAGE_CUSTOM_DOMAIN=f"{s3.endpoint}/not-this-bucket")
    out, _, code = run("doctor")
    assert code == 1
    assert failed_steps(out)[0].startswith(f"✗ GET {s3.endpoint}/not-this-bucket/")
    assert f"The link's host {s3.endpoint}/not-this-bucket answered 404" in out
    assert "Point the CDN's origin at the bucket" in out


def test_public_get_403_blames_block_public_access_or_the_bucket_policy(s3):
    s3.client.delete_bucket_policy(Bucket=s3.bucket)
    out, err, code = run("doctor")
    assert code == 1
    (step,) = failed_steps(out)
    assert step.startswith("✗ GET ")
    assert "Anonymous GET of the public link was refused (403" in out
    assert "Block Public Access" in out and "--public-read" in out and "KEYED_STORAGE_PRIVATE=1" in out
    assert "✓ DELETE keyed-storage-doctor/" in out  # the probe is still cleaned up
    assert s3.keys() == []
    assert "1 check(s) failed" in err


def test_missing_bucket(s3, env):
    env(BUCKET_NAME="no-such-bucket-here")
    out, _, code = run("doctor")
    assert code == 1
    assert failed_steps(out) == ["✗ bucket no-such-bucket-here exists"]
    assert "does not exist" in out and "create-bucket --bucket no-such-bucket-here" in out
    assert "PUT" not in out


def test_unreachable_endpoint(s3, env):
    closed = f"http://127.0.0.1:{free_port()}"
    env(AWS_ENDPOINT_URL_S3=closed)
    out, _, code = run("doctor")
    assert code == 1
    assert failed_steps(out) == [f"✗ bucket {s3.bucket} exists"]
    assert f"cannot be reached ({closed})" in out
    assert "Check AWS_ENDPOINT_URL_S3" in out


@pytest.mark.moto_only(
    "SeaweedFS has no bucket regions: it accepts a LocationConstraint and forgets it (GetBucketLocation "
    "answers none), so there is no wrong region to find"
)
def test_wrong_region(s3, env):
    bucket = s3.bucket + "-eu"
    s3.client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    env(BUCKET_NAME=bucket)
    out, _, code = run("doctor")
    assert code == 1
    assert failed_steps(out) == ["✗ bucket region"]
    assert "in eu-west-1 but AWS_REGION=us-east-1" in out
    assert "Set AWS_REGION=eu-west-1." in out


def test_clock_skew(s3, monkeypatch):
    real = doctor.clock
    monkeypatch.setattr(doctor, "clock", lambda: real() + 3600)
    out, _, code = run("doctor")
    assert code == 1
    assert failed_steps(out) == ["✗ clock"]
    assert "60 minutes ahead of the server's" in out and "timedatectl" in out


SIGNATURES_CHECKED = (
    "moto's server takes any signature and any request time; SeaweedFS checks both as S3 does"
)


@pytest.mark.seaweedfs_only(SIGNATURES_CHECKED)
def test_a_wrong_secret_refused_by_the_server_itself(s3, env):
    env(AWS_SECRET="not-the-secret-at-all-0123456789")
    out, err, code = run("doctor")
    assert code == 1
    assert failed_steps(out) == [f"✗ bucket {s3.bucket} exists"]
    assert "AWS_SECRET does not belong to AWS_KEY" in out
    assert "not-the-secret" not in out + err


@pytest.mark.seaweedfs_only(SIGNATURES_CHECKED)
def test_a_clock_the_server_refuses_as_too_far_off(s3):
    import botocore.auth

    # The answer comes from the server (RequestTimeTooSkewed), not from doctor's own clock
    # check: every request is signed an hour ahead, while doctor's clock stays right.
    signing_time = botocore.auth.get_current_datetime
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            botocore.auth, "get_current_datetime", lambda *args, **kwargs: signing_time() + timedelta(hours=1)
        )
        out, _, code = run("doctor")
    assert code == 1
    assert failed_steps(out) == [f"✗ bucket {s3.bucket} exists"]
    assert "This machine's clock is too far from S3's" in out and "timedatectl" in out


def test_half_configuration_names_the_variable(env):
    env(AWS_KEY=TEST_KEY)
    out, _, code = run("doctor")
    assert code == 1
    assert "✗ configuration (keyed_storage.E001)" in out
    assert "AWS_SECRET is not" in out


@pytest.fixture(scope="module")
def enforcing():
    """A server that checks signatures and IAM, with one user per action taken out of the policy."""
    bucket = "doctor-iam"
    users = {}
    for statement, action in (
        (0, "s3:GetBucketLocation"),
        (0, "s3:ListBucket"),
        (0, "s3:GetLifecycleConfiguration"),
        (1, "s3:PutObject"),
    ):
        document = iam_policy(bucket)
        document["Statement"][statement]["Action"].remove(action)
        users[f"no-{action[3:]}"] = document
    with iam_enforcing_s3(bucket, users) as (endpoint, keys):
        yield bucket, endpoint, keys


@pytest.fixture
def enforced(enforcing, env):
    bucket, endpoint, keys = enforcing
    env(BUCKET_NAME=bucket, AWS_ENDPOINT_URL_S3=endpoint)

    def use(key: str, secret: str) -> None:
        env(AWS_KEY=key, AWS_SECRET=secret)

    return keys, use


@pytest.mark.parametrize(
    ("action", "step"),
    [
        ("s3:GetBucketLocation", "✗ bucket doctor-iam exists"),
        ("s3:ListBucket", "✗ list objects (the app lists a key's earlier objects to replace them)"),
        ("s3:PutObject", "✗ PUT"),
    ],
)
def test_access_denied_names_the_missing_action(enforced, action, step):
    keys, use = enforced
    key, secret = keys[f"no-{action[3:]}"]
    use(key, secret)
    out, err, code = run("doctor")
    assert code == 1
    assert [line.split(" keyed-storage-doctor/")[0] for line in failed_steps(out)] == [step]
    assert f"not allowed {action}" in out
    assert "keyed_storage policy" in out
    assert secret not in out + err


def test_wrong_secret(enforced):
    keys, use = enforced
    use(keys["no-PutObject"][0], "not-the-secret-at-all-0123456789")
    out, _, code = run("doctor")
    assert code == 1
    assert "AWS_SECRET does not belong to AWS_KEY" in out
    assert "not-the-secret" not in out


def test_unknown_access_key(enforced):
    _, use = enforced
    use("AKIANOTAREALKEY00000", "whatever-secret-value")
    out, _, code = run("doctor")
    assert code == 1
    assert "S3 does not know the access key AWS_KEY=AKIANOTAREALKEY00000" in out


def test_local_success(local, settings):
    os.makedirs(settings.MEDIA_ROOT)
    out, _, code = run("doctor")
    assert_all_passed(out, code)
    assert "Backend: local, because BUCKET_NAME is not set" in out
    assert f"✓ base URL for links: {local.url} (KEYED_STORAGE_BASE_URL)" in out
    assert os.listdir(settings.MEDIA_ROOT) == []  # the probe and its directories are gone


def test_local_missing_media_root(local, settings):
    out, _, code = run("doctor")
    assert code == 1
    assert failed_steps(out) == [f"✗ MEDIA_ROOT {settings.MEDIA_ROOT} exists"]
    assert f"mkdir -p {settings.MEDIA_ROOT}" in out


def test_local_media_root_not_writable(local, settings):
    # /proc is a directory no one can create files in, root included (CI runs as root).
    settings.MEDIA_ROOT = "/proc"
    out, _, code = run("doctor")
    assert code == 1
    assert failed_steps(out) == ["✗ MEDIA_ROOT /proc is writable"]
    assert "chown" in out


def test_local_base_url_unset_in_production(settings):
    os.makedirs(settings.MEDIA_ROOT)
    settings.DEBUG = False
    out, _, code = run("doctor")
    assert code == 1
    assert failed_steps(out) == ["✗ base URL for links"]
    assert "Set KEYED_STORAGE_BASE_URL" in out


# Direct uploads ------------------------------------------------------------------------------

DIRECT_STEP = "direct upload (keyed_storage.direct): POST to the bucket, then finish_upload()"


def test_s3_proves_a_direct_upload_and_cleans_up(s3):
    out, _, code = run("doctor")
    assert_all_passed(out, code)
    assert f"✓ {DIRECT_STEP}: 204, checked and presented" in out
    assert s3.keys() == []


def test_a_bucket_that_takes_no_post_is_named(s3, monkeypatch):
    # What a service without POST uploads answers; the doctor's own multipart POST is replaced.
    refusal = "<Error><Code>NotImplemented</Code><Message>POST Object</Message></Error>"
    monkeypatch.setattr(doctor, "_post_form", lambda url, fields, body: (501, refusal))
    out, _, code = run("doctor")
    assert code == 1
    assert failed_steps(out) == [f"✗ {DIRECT_STEP}"]
    assert "answered the POST with 501 NotImplemented" in out
    assert "use normal uploads there" in out
    assert s3.keys() == []


def test_local_finds_the_direct_upload_endpoint(local, settings):
    os.makedirs(settings.MEDIA_ROOT)
    out, _, code = run("doctor")
    assert code == 0, out
    assert "✓ direct uploads: keyed_storage's endpoint is routed at /keyed-storage/direct/" in out
    settings.ROOT_URLCONF = "tests.debug_urls"
    out, _, code = run("doctor")
    assert code == 1
    assert failed_steps(out) == ["✗ direct uploads: keyed_storage's endpoint is routed"]
    assert "include('keyed_storage.urls')" in out


# Abandoned multipart uploads: a warning, never a failure -------------------------------------

ABANDONED = "abandoned multipart uploads"


def warnings(out: str, about: str = ABANDONED) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("! ") and about in line]


def test_warns_when_no_lifecycle_rule_aborts_abandoned_multipart_uploads(s3):
    out, _, code = run("doctor")
    assert_all_passed(out, code)  # every upload works without the rule: it only costs more
    assert warnings(out) == [f"! {ABANDONED}"]
    assert "No enabled lifecycle rule for the whole bucket aborts incomplete multipart uploads" in out
    assert "keyed_storage policy --only lifecycle" in out
    assert f"put-bucket-lifecycle-configuration --bucket {s3.bucket}" in out


def test_the_printed_lifecycle_rule_satisfies_the_doctor(s3):
    s3.client.put_bucket_lifecycle_configuration(
        Bucket=s3.bucket, LifecycleConfiguration=lifecycle_configuration()
    )
    out, _, code = run("doctor")
    assert_all_passed(out, code)
    assert warnings(out) == []
    assert f"✓ {ABANDONED}: a lifecycle rule removes their parts 1 day(s) after they began" in out


def rule(**fields) -> dict:
    return {"ID": "r", "Status": "Enabled", "Filter": {"Prefix": ""}} | fields


ABORT = {"AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3}}


@pytest.mark.parametrize(
    "rules",
    [
        pytest.param([rule(Status="Disabled", **ABORT)], id="disabled"),
        pytest.param([rule(Filter={"Prefix": "events/"}, **ABORT)], id="one-prefix-only"),
        pytest.param([rule(Expiration={"Days": 30})], id="expires-objects-but-aborts-nothing"),
    ],
)
def test_a_rule_that_leaves_some_uploads_billed_is_warned_about(s3, rules):
    s3.client.put_bucket_lifecycle_configuration(Bucket=s3.bucket, LifecycleConfiguration={"Rules": rules})
    out, _, code = run("doctor")
    assert_all_passed(out, code)
    assert warnings(out) == [f"! {ABANDONED}"]


def test_the_fewest_days_of_the_rules_that_cover_the_bucket_are_told(s3):
    rules = [
        rule(ID="late", **ABORT),
        rule(ID="soon", AbortIncompleteMultipartUpload={"DaysAfterInitiation": 2}),
    ]
    s3.client.put_bucket_lifecycle_configuration(Bucket=s3.bucket, LifecycleConfiguration={"Rules": rules})
    out, _, code = run("doctor")
    assert_all_passed(out, code)
    assert f"✓ {ABANDONED}: a lifecycle rule removes their parts 2 day(s) after they began" in out


def test_lifecycle_rules_the_app_may_not_read_are_a_warning_naming_the_action(enforced):
    keys, use = enforced
    use(*keys["no-GetLifecycleConfiguration"])
    out, _, _ = run("doctor")
    assert warnings(out) == [f"! {ABANDONED}"]
    assert not [line for line in failed_steps(out) if ABANDONED in line]
    assert "not allowed s3:GetLifecycleConfiguration" in out


def test_local_mode_has_no_multipart_uploads_to_check(local, settings):
    os.makedirs(settings.MEDIA_ROOT)
    out, _, code = run("doctor")
    assert_all_passed(out, code)
    assert ABANDONED not in out


CORS = "direct uploads from browsers (CORS)"


def test_warns_when_browsers_may_not_send_direct_uploads_to_the_bucket(s3):
    out, _, code = run("doctor")
    assert_all_passed(out, code)  # file inputs then upload through Django: slower, not broken
    assert warnings(out, CORS) == [f"! {CORS}"]
    assert "POST from no origin; PUT from no origin" in out
    assert "keyed_storage policy --only cors --origin" in out
    assert f"put-bucket-cors --bucket {s3.bucket}" in out


def test_the_printed_cors_rule_satisfies_the_doctor(s3, env):
    env(KEYED_STORAGE_BASE_URL="https://events.example.org")
    configuration = cors_configuration(["https://events.example.org"])
    s3.client.put_bucket_cors(Bucket=s3.bucket, CORSConfiguration=configuration)
    out, _, code = run("doctor")
    assert_all_passed(out, code)
    assert warnings(out, CORS) == []
    assert f"✓ {CORS}: POST and PUT allowed from https://events.example.org" in out


@pytest.mark.parametrize(
    "rules, told",
    [
        # POST alone: one-request uploads would work, the parts of a multipart one would not.
        (
            [{"AllowedOrigins": ["https://events.example.org"], "AllowedMethods": ["POST"]}],
            "POST from https://events.example.org; PUT from no origin",
        ),
        # Another site's origin.
        (
            [{"AllowedOrigins": ["https://other.example.org"], "AllowedMethods": ["POST", "PUT"]}],
            "not both from https://events.example.org",
        ),
    ],
    ids=["post-only", "another-origin"],
)
def test_a_cors_rule_that_leaves_uploads_out_is_warned_about(s3, env, rules, told):
    env(KEYED_STORAGE_BASE_URL="https://events.example.org")
    s3.client.put_bucket_cors(Bucket=s3.bucket, CORSConfiguration={"CORSRules": rules})
    out, _, code = run("doctor")
    assert_all_passed(out, code)
    assert warnings(out, CORS) == [f"! {CORS}"]
    assert told in out


def test_a_wildcard_origin_admits_the_site(s3, env):
    env(KEYED_STORAGE_BASE_URL="https://events.example.org")
    rule = {"AllowedOrigins": ["https://*.example.org"], "AllowedMethods": ["PUT", "POST"]}
    s3.client.put_bucket_cors(Bucket=s3.bucket, CORSConfiguration={"CORSRules": [rule]})
    out, _, code = run("doctor")
    assert warnings(out, CORS) == []
    assert code == 0


# Every variable of the table set at once: doctor shows each, and proves the configuration --------


def set_every_variable(env, modes: set[str], **values: str) -> None:
    """Each variable of these modes at its table's example, unless the mode's fixture or
    `values` gives it (those need a real server or go together); a value "" leaves it unset."""
    examples = {v.name: v.example for v in variables.TABLE if v.mode in modes and v.name not in os.environ}
    env(**{**examples, **{name: value or None for name, value in values.items()}})


def assert_shows_every_variable_set(out: str) -> None:
    shown = {line.split("=", 1)[0].strip() for line in out.splitlines() if line.startswith("  ")}
    assert {variable.name for variable in variables.TABLE if variable.name in os.environ} <= shown


def test_local_with_every_local_variable_set(local, settings, env):
    os.makedirs(settings.MEDIA_ROOT)
    set_every_variable(env, {"local", "both"})
    out, _, code = run("doctor")
    assert_all_passed(out, code)
    assert_shows_every_variable_set(out)
    assert "KEYED_STORAGE_DIRECT_PART_SIZE=5242880  (environment)" in out


def test_s3_private_with_every_variable_set(s3, env):
    # A presigned link is only valid on the S3 host: the custom domain is the public test's.
    set_every_variable(
        env,
        {"s3", "local", "both"},
        KEYED_STORAGE_CUSTOM_DOMAIN="",
        KEYED_STORAGE_CACHE_CONTROL="private, max-age=600, immutable",
    )
    out, _, code = run("doctor")
    assert_all_passed(out, code)
    assert_shows_every_variable_set(out)
    assert "KEYED_STORAGE_PRIVATE=1  (environment)" in out
    assert "KEYED_STORAGE_DIRECT_PART_THRESHOLD=33554432  (environment)" in out


def test_s3_public_with_every_variable_set(s3, env):
    set_every_variable(
        env,
        {"s3", "local", "both"},
        KEYED_STORAGE_PRIVATE="",
        KEYED_STORAGE_URL_EXPIRES="",
        KEYED_STORAGE_CUSTOM_DOMAIN=f"{s3.endpoint}/{s3.bucket}",  # a "CDN" that serves the bucket
    )
    out, _, code = run("doctor")
    assert_all_passed(out, code)
    assert_shows_every_variable_set(out)
    assert f"KEYED_STORAGE_CUSTOM_DOMAIN={s3.endpoint}/{s3.bucket}  (environment)" in out
