"""The one atomic writer (chatbot/files.py), shared by the bundle and the intents file editor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chatbot.files import replace_file


def test_a_failed_check_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "intents.json"
    target.write_text("old")

    def refuse(temporary: Path) -> None:
        assert temporary.read_bytes() == b"new"  # the check sees the new bytes, on disk
        raise OSError("does not read back")

    with pytest.raises(OSError, match="does not read back"):
        replace_file(target, b"new", check=refuse)
    assert target.read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["intents.json"]


def test_the_old_permissions_are_kept_and_a_new_file_is_readable_by_all(tmp_path: Path) -> None:
    kept, new = tmp_path / "kept.txt", tmp_path / "new.txt"
    kept.write_text("old")
    kept.chmod(0o640)
    replace_file(kept, b"x")
    replace_file(new, b"y")
    assert (kept.stat().st_mode & 0o777, kept.read_text()) == (0o640, "x")
    assert (new.stat().st_mode & 0o777, new.read_text()) == (0o644, "y")


def test_a_temporary_left_by_a_killed_writer_goes_at_the_next_write(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    stale = tmp_path / f".model.h5.{int(gone.stdout)}.abc.tmp"
    stale.write_bytes(b"half")
    mine = tmp_path / ".model.h5.1.abc.tmp"  # pid 1 is alive: not ours to remove
    mine.write_bytes(b"half")
    replace_file(tmp_path / "model.h5", b"whole")
    assert not stale.exists() and mine.exists()
