"""Create the demo's bucket on a local S3 server, readable by anyone, as `make demo-s3` needs.

Browsers on the demo's pages may POST and PUT to it (a CORS rule for --origin): the admin's session
recordings and slides are uploaded straight to the bucket.

It reads the same environment variables as keyed_storage (BUCKET_NAME, AWS_KEY, AWS_SECRET,
AWS_ENDPOINT_URL_S3) and refuses to run without an endpoint, so it never touches real AWS.
"""

import json
import os
import time

import boto3
from botocore.exceptions import ClientError, EndpointConnectionError
from django.core.management.base import BaseCommand, CommandError


def public_read_policy(bucket: str) -> str:
    # New buckets have ACLs disabled: anonymous reads are granted by a bucket policy.
    statement = {
        "Sid": "PublicRead",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


class Command(BaseCommand):
    help = "Create BUCKET_NAME with a public-read policy on the S3 server at AWS_ENDPOINT_URL_S3."

    def add_arguments(self, parser):
        parser.add_argument("--wait", type=float, default=15.0, help="seconds to wait for the server")
        parser.add_argument(
            "--origin",
            default="http://127.0.0.1:8000",
            help="the demo site's origin, whose pages may upload to the bucket directly",
        )

    def handle(self, *args, wait: float, origin: str, **options):
        names = ("BUCKET_NAME", "AWS_KEY", "AWS_SECRET", "AWS_ENDPOINT_URL_S3")
        missing = [name for name in names if not os.environ.get(name)]
        if missing:
            raise CommandError(f"demo_bucket needs {', '.join(missing)}; it only talks to a local S3 server.")
        bucket, endpoint = os.environ["BUCKET_NAME"], os.environ["AWS_ENDPOINT_URL_S3"]
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=os.environ.get("AWS_REGION", "us-east-1"),
            aws_access_key_id=os.environ["AWS_KEY"],
            aws_secret_access_key=os.environ["AWS_SECRET"],
        )
        deadline = time.monotonic() + wait
        while True:
            try:
                client.create_bucket(Bucket=bucket)
                break
            except EndpointConnectionError:
                if time.monotonic() > deadline:
                    raise CommandError(f"No S3 server answered at {endpoint} within {wait:g} s.") from None
                time.sleep(0.2)  # the server process is still starting
            except ClientError as error:
                if error.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
                    raise
                break
        client.put_bucket_policy(Bucket=bucket, Policy=public_read_policy(bucket))
        # What a bucket needs before browsers may POST direct uploads to it, and PUT the parts
        # of large ones (docs/howto/direct-uploads.rst, "In forms and the admin", "Resumable
        # uploads"). A preflight is sent because the widget listens to upload progress.
        rule = {"AllowedOrigins": [origin], "AllowedMethods": ["POST", "PUT"], "AllowedHeaders": ["*"]}
        client.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [rule]})
        self._wait_until_readable(client, bucket, deadline)
        self.stdout.write(
            f"Bucket {bucket!r} ready at {endpoint}, readable by anyone, direct uploads from {origin}."
        )

    def _wait_until_readable(self, client, bucket: str, deadline: float) -> None:
        """A restarted SeaweedFS lists its objects before its volume server has rejoined, and
        answers 500 to reads until then: wait until a stored object's first byte reads back."""
        listing = client.list_objects_v2(Bucket=bucket, MaxKeys=1).get("Contents", [])
        if not listing:
            return
        while True:
            try:
                client.get_object(Bucket=bucket, Key=listing[0]["Key"], Range="bytes=0-0")["Body"].read()
                return
            except ClientError as error:
                status = error.response["ResponseMetadata"]["HTTPStatusCode"]
                if status < 500 or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
