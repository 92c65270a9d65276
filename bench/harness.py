"""Moved to tests/harness.py: this name stays for imports written before the move and for
``python -m bench.harness``. Import ``tests.harness`` in new code."""

from tests.harness import *  # noqa: F403
from tests.harness import main

if __name__ == "__main__":
    raise SystemExit(main())
