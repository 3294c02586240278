"""Shared fixtures: the device parameter (GPU cases show up as skipped without one), the gpu
marker's skip, and rng."""
import numpy as np
import pytest

import gpugrad as gg
from helpers import has_cuda


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def pytest_collection_modifyitems(config, items):
    """The one GPU marker: a test marked `gpu` is skipped where no CUDA device is visible."""
    if has_cuda():
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(params=DEVICES)
def device(request):
    """Run the test on each device; new tensors are created there."""
    with gg.device(request.param):
        yield gg.get_default_device()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
