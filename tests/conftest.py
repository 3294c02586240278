"""Shared fixtures: the device parameter (GPU cases show up as skipped without one) and rng."""
import numpy as np
import pytest

import gpugrad as gg
from helpers import has_cuda


DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu,
                                              pytest.mark.skipif(not has_cuda(), reason="no CUDA device")])]


@pytest.fixture(params=DEVICES)
def device(request):
    """Run the test on each device; new tensors are created there."""
    with gg.device(request.param):
        yield gg.get_default_device()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
