"""The importer on a seeded bucket, as docs/operations.md shows it: ``python -m tests.importer_demo``.

Starts a SeaweedFS server (``harness/s3server.py``), seeds the bucket ``original`` in the original
server's layout from ``../shared`` exactly as ``tests/app/test_importer.py`` does, then runs
``python -m app.importer --bucket original --prefix old-server`` three times (``--dry-run``, the
import, again) into Rollcall's bucket ``rollcall``, and prints each command's output.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from harness.s3server import SeaweedS3Server
from ml.eval.shared_data import shared_dir
from tests.app.test_importer import _seed


def main() -> None:
    server = SeaweedS3Server()
    info = server.start()
    try:
        client = info.client()
        client.create_bucket(Bucket="original")
        client.create_bucket(Bucket="rollcall")
        _seed(client, "original", shared_dir() / "faces" / "people")
        env = {
            **os.environ,
            "S3_BUCKET_NAME": "rollcall",
            "S3_ENDPOINT_URL": info.endpoint_url,
            "AWS_REGION": info.region,
            "AWS_ACCESS_KEY_ID": info.access_key_id,
            "AWS_SECRET_ACCESS_KEY": info.secret_access_key,
            "ROLLCALL_LOG_LEVEL": "WARNING",
        }
        for extra in (["--dry-run"], [], []):
            args = ["-m", "app.importer", "--bucket", "original", "--prefix", "old-server", *extra]
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, *args], env=env, capture_output=True, text=True, check=False
            )
            sys.stdout.write(
                f"$ python {' '.join(args)}   # exit {done.returncode}, "
                f"{time.monotonic() - started:.0f} s\n{done.stdout}\n"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
