"""app/files.py on a real full filesystem: a write that does not fit is DiskFull naming the file and the room, and leaves nothing."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from app.files import DiskFull, atomic_write, free_bytes, remove_leftovers, save_json, temp_prefix
from trainer import artifacts


def test_a_write_that_does_not_fit_names_the_file_and_keeps_the_previous_one(small_disk):
    job = small_disk.path / "jobs" / "1"
    assert artifacts.save_checkpoint(job, {"w": torch.arange(10.0)})
    for write in (
        lambda: artifacts.save_checkpoint(job, {"w": torch.zeros(3_000_000)}),  # 12 MB into 8 MB
        lambda: artifacts.save_embeddings(job, np.zeros((2_000_000, 4)), np.zeros(2_000_000), np.zeros(2_000_000)),
        lambda: save_json(job / "distances.json", {"bins": [0.5] * 3_000_000}),
    ):
        with pytest.raises(DiskFull) as caught:
            write()
        message = str(caught.value)
        assert message.startswith(f"disk full while writing {job}/") and "(free " in message, message
        assert caught.value.errno == errno.ENOSPC
        assert sorted(p.name for p in job.iterdir()) == ["checkpoint.pt"]  # no partial temp file left
    assert artifacts.load_checkpoint(job)["w"].tolist() == list(range(10))  # the previous checkpoint, intact
    assert free_bytes(job) > 7_000_000  # the partial files' space came back


def test_an_other_error_is_not_called_a_full_disk(tmp_path):
    def broken(_path):
        raise ValueError("not a disk problem")

    with pytest.raises(ValueError, match="not a disk problem"):
        atomic_write(tmp_path / "x.json", broken)
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    # A real process that dies (SIGKILL) in the middle of writing checkpoint.pt leaves its temp file behind.
    code = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from app.files import atomic_write
        def write(p):
            p.write_bytes(b"x" * 1_000_000)
            os.kill(os.getpid(), signal.SIGKILL)
        atomic_write(Path({str(tmp_path / "checkpoint.pt")!r}), write)
    """)
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert done.returncode == -9
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".checkpoint.pt.")
    mine = tmp_path / f"{temp_prefix('checkpoint.pt')}busy.tmp"  # a live process's temp file (this one's) is not touched
    mine.write_bytes(b"")
    save_json(tmp_path / "checkpoint.pt", {"ok": True})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["checkpoint.pt", mine.name])
    remove_leftovers(tmp_path, "checkpoint.pt")
    assert mine.exists()
