"""Exit 0 when the server on this host answers /healthz with 200: Docker's HEALTHCHECK.

Standard library only, because the tensorflow/tensorflow base image has no curl.
"""

import os
import sys
import urllib.request


def main() -> int:
    """Ask the local server's /healthz and return the exit status."""
    url = f"http://127.0.0.1:{os.environ.get('PORT', '5000')}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:  # URLError and HTTPError are OSErrors
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
