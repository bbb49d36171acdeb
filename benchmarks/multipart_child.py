"""The Django side of a multipart direct upload, in a process of its own, for bench.py.

`python multipart_child.py ENDPOINT BUCKET SIZE` starts a multipart direct upload of SIZE
bytes (after a warm-up) and prints its ticket as one JSON line; then it answers each line it
reads: `urls 1,2,3` with {number: part URL} as JSON, `finish` with the stored name, its peak
resident memory and its baseline ('name baseline_kib peak_kib'). The bytes go from bench.py
(the browser's part) straight to the S3 server: this process only signs and asks, and its
memory shows it.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import configure_django, use_s3
from benchmarks.rss_child import status


def main() -> None:
    endpoint, bucket, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.rmdir(configure_django())  # the media directory: this process stores only in S3
    use_s3(endpoint, bucket)
    from keyed_storage.direct.multipart import abort_upload, part_urls
    from keyed_storage.direct.tickets import finish_upload, start_upload

    # A warm-up upload, begun and aborted: the boto3 client and its service model, which any
    # Django process loads once, are not what one upload costs.
    warm_up = start_upload("bench/warm-up", filename="w.mp4", size=size, content_type="video/mp4")
    part_urls(warm_up.reference, [1])
    abort_upload(warm_up.reference)
    with open("/proc/self/clear_refs", "w") as reset:
        reset.write("5")  # reset VmHWM to the current resident set
    baseline = status("VmHWM")
    ticket = start_upload("bench/recordings", filename="keynote.mp4", size=size, content_type="video/mp4")
    print(json.dumps({"reference": ticket.reference, "parts": ticket.parts, "part_size": ticket.part_size}))
    sys.stdout.flush()
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "urls":
            numbers = [int(n) for n in argument.split(",")]
            print(json.dumps(part_urls(ticket.reference, numbers)))
        elif command == "finish":
            name = finish_upload(ticket.reference)
            print(name, baseline, status("VmHWM"))
            return
        sys.stdout.flush()


if __name__ == "__main__":
    main()
