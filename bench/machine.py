"""Describe the machine a benchmark ran on, for the results files."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path


def describe_machine() -> dict[str, str | int]:
    """Return cores, CPU model, Python version, date and git commit."""
    cpuinfo = Path("/proc/cpuinfo")
    model_lines = [line for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return {
        "cores": os.cpu_count() or 0,
        "cpu": model_lines[0].split(":", 1)[1].strip() if model_lines else platform.processor(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit.stdout.strip(),
    }
