"""Upload SIZE bytes from a non-seekable stream and report this process's peak RSS growth.

Run as a child of bench.py: `python rss_child.py keyed|boto3 ENDPOINT BUCKET SIZE`. It prints
'baseline_kib peak_kib' where baseline is the peak after imports and a warm-up upload.
"""

from __future__ import annotations

import io
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import boto3_client, configure_django, use_s3

CHUNK = b"\x5a" * (1024 * 1024)


class Stream(io.RawIOBase):
    """SIZE bytes generated on the fly: the data itself never sits in memory."""

    def __init__(self, size: int):
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left, len(CHUNK))
        buffer[:n] = CHUNK[:n]
        self.left -= n
        return n


def main() -> None:
    who, endpoint, bucket, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    configure_django()
    use_s3(endpoint, bucket)
    from keyed_storage import upload

    client = boto3_client(endpoint)

    def send(n: int, key: str) -> None:
        stream = io.BufferedReader(Stream(n))
        if who == "keyed":
            upload(stream, key, exact=True)
        else:
            client.upload_fileobj(stream, bucket, key)

    send(1024 * 1024, f"warmup-{who}")
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    send(size, f"big-{who}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(baseline, peak)


if __name__ == "__main__":
    main()
