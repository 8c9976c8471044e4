"""The embedded server's runtime folder (its lock, and its socket when the data directory's path is
too long for one) is private to the user, whatever made it first."""

from __future__ import annotations

import stat
from pathlib import Path

from hub.store.embedded import private_runtime_dir


def test_made_private(tmp_path: Path) -> None:
    runtime = private_runtime_dir(tmp_path)
    assert runtime is not None and runtime.parent == tmp_path
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700


def test_an_existing_folder_open_to_others_is_made_private(tmp_path: Path) -> None:
    """platformdirs refuses a runtime folder that is not 0700 and falls back to one under TMPDIR,
    which under a deep TMPDIR made PostgreSQL's socket path too long to start."""
    first = private_runtime_dir(tmp_path)
    assert first is not None
    first.chmod(0o755)
    again = private_runtime_dir(tmp_path)
    assert again == first
    assert stat.S_IMODE(first.stat().st_mode) == 0o700


def test_a_file_in_its_place_is_not_used(tmp_path: Path) -> None:
    taken = private_runtime_dir(tmp_path)
    assert taken is not None
    taken.rmdir()
    taken.symlink_to(tmp_path)  # someone else's link where the folder should be
    assert private_runtime_dir(tmp_path) is None
