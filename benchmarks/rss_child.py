"""Upload SIZE bytes from a non-seekable stream and report this process's peak RSS growth.

Run as a child of bench.py: `python rss_child.py keyed|boto3 ENDPOINT BUCKET SIZE`. It prints
'baseline_kib peak_kib': the resident set after imports and a warm-up upload, and the peak
(VmHWM) during the big upload. The peak is reset first (clear_refs), since getrusage's
ru_maxrss would carry the parent's peak across fork and exec.
"""

from __future__ import annotations

import io
import os
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
    os.rmdir(configure_django())  # the media directory: this child stores only in S3
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
    with open("/proc/self/clear_refs", "w") as reset:
        reset.write("5")  # reset VmHWM to the current resident set
    baseline = status("VmHWM")
    send(size, f"big-{who}")
    print(baseline, status("VmHWM"))


def status(field: str) -> int:
    """A /proc/self/status figure in KiB."""
    with open("/proc/self/status") as lines:
        for line in lines:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


if __name__ == "__main__":
    main()
