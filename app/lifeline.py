"""Child processes that die with their parent, so a `kill -9` leaves no orphan behind.

Linux's PR_SET_PDEATHSIG: the kernel signals the child when the thread that started it ends,
however it ends. Elsewhere this is a no-op (the parent's normal shutdown still stops them).
"""

from __future__ import annotations

import ctypes
import os
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int, parent_pid: int) -> None:
    """Receive `sig` when `parent_pid` (the process that started this one) ends; now if it already has."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the parent died before the prctl: nobody would signal us
        os.kill(os.getpid(), sig)
