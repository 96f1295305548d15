import os

import pytest
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _deterministic_seed():
    """Every test starts from the same random state."""
    torch.manual_seed(0)
    yield


def pytest_configure(config):
    # Two cores: more threads only add contention.
    torch.set_num_threads(min(2, os.cpu_count() or 1))
