"""The image's health probe: exit 0 when the service is ready, 1 otherwise.

Ready is ``GET /readyz`` answering 200: the models are loaded and the storage (the data folder or
the S3 bucket) answers. Its reply, or why there was none, is printed: ``docker inspect`` keeps it
with the health state, so an operator reads there why a container is unhealthy. Standard library
only: it runs in the image's environment, beside the service.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

READY_URL = "http://127.0.0.1:8000/readyz"
TIMEOUT_S = 4.0
"""Under the HEALTHCHECK's --timeout (5 s), so the reason is printed rather than cut off."""


def main() -> int:
    try:
        with urllib.request.urlopen(READY_URL, timeout=TIMEOUT_S) as reply:
            sys.stdout.write(reply.read(1000).decode(errors="replace") + "\n")
            return 0
    except urllib.error.HTTPError as error:  # 503: storage unreachable (or models not loaded)
        sys.stdout.write(f"{error.code}: {error.read(1000).decode(errors='replace')}\n")
    except OSError as error:  # not listening yet, or no answer in time
        sys.stdout.write(f"no answer from {READY_URL}: {error}\n")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
