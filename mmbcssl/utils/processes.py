"""Child processes that end with the process that started them."""
import ctypes
import os
import signal
import sys
from typing import Callable, Optional

# prctl(2): PR_SET_PDEATHSIG, from <linux/prctl.h>
_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> Optional[Callable[[], None]]:
    """A ``preexec_fn`` for :mod:`subprocess` after which the child gets
    ``sig`` when its parent dies, however it dies (SIGKILL and the OOM
    killer included): a suite or demo killed mid-run leaves no
    ``tools/train.py`` training on as an orphan beside the re-run.

    The setting survives ``exec`` (the ``tools/dist_*.sh`` launchers exec
    torchrun, which stops its workers on SIGTERM). SIGTERM rather than
    SIGKILL lets torchrun do that. Linux only (None elsewhere: the child
    is then started as before).
    """
    if not sys.platform.startswith('linux'):
        return None
    parent = os.getpid()

    def _preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the prctl
            os.kill(os.getpid(), sig)

    return _preexec
