import pytest
import torch


@pytest.fixture(scope='module', autouse=True)
def _one_thread():
    """The networks here are tiny (or run on tiny inputs): their ops are too
    small to split, and on a busy 2-core machine two threads wait on each
    other (measured: 20 training steps of the tiny BC-SSL of
    test_vis_cam.py, 0.85 s on one thread, 15 s on two while other jobs
    ran)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)
