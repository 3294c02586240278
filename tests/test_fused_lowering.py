"""The device lowering of a compiled step (graphs.fused_device_replay: the passes, fused
groups, update batches, the schedule) checked on the CPU: each fused group runs its NumPy
forms in place of its CUDA kernel, and each batch of updates the updates' forwards, so every pass, grouping and scheduling decision is tested without a GPU.
On a GPU, tests/test_compiled_programs.py runs the same programs through the kernels."""
import numpy as np
import pytest

import gpugrad as gg
from gpugrad import graphs
from helpers import program_of
from test_compiled_programs import _program


def _numpy_group(group):
    def run(*inputs):
        outs = [np.empty(shape, dtype) for shape, dtype in group.output_avals]
        return group.run_numpy(np, outs, inputs)
    return run


def _fused_on_the_cpu(step, *args):
    """A function running `step` as a compiled CUDA step would: host steps, then the fused
    device replay (groups through their NumPy forms); and the lowering's description."""
    program = program_of(step, *args)  # the capture runs one eager step
    device, description = graphs.fused_device_replay(program, _numpy_group,
                                                     lambda batch: lambda *inputs: batch.run_reference(inputs))
    host = [s for s in program.steps if s.kind == "host"]

    def run(*inputs):
        for h in host:
            h.fn()
        return device(*(t._data for t in inputs))
    return run, description


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", range(24))
def test_the_fused_lowering_equals_eager_on_random_programs(seed, dtype):
    fused_step, fused_vars, x = _program(seed, "cpu", dtype)
    eager_step, eager_vars, _ = _program(seed, "cpu", dtype)
    eager_step(x)  # the capture ran one eager step of the fused program's copy
    run, description = _fused_on_the_cpu(fused_step, x)
    assert "generated kernels" in description and "1 batched updates" in description
    # the passes rewrite degenerate products (K=1 exactly; N=1 and M=1 as sums, in another order)
    rtol, atol = (1e-12, 1e-14) if dtype == "float64" else (2e-6, 1e-6)
    for _ in range(3):
        (loss,), expected = run(x), eager_step(x)
        np.testing.assert_allclose(loss, expected.numpy(), rtol=rtol, atol=atol)
        for u, v in zip(fused_vars, eager_vars):
            np.testing.assert_allclose(u.numpy(), v.numpy(), rtol=rtol, atol=atol, err_msg=u.name)


def test_the_seed_step_fuses_into_few_kernels_and_no_matmul():
    from test_graphs import _net
    step, variables, x, y = _net("cpu", "float32", gg.optimizers.SGD(0.1))
    run, description = _fused_on_the_cpu(step, x, y)
    first = description.splitlines()[0]
    assert first.startswith("4 generated kernels (3 fused, 1 batched updates; 4 launches) and 0 other array calls "
                            "a step, besides 3 views"), description
    assert "  other array calls: none" in description and "= matmul(" not in description
    # Every reduction joins the kernel that feeds it, and siblings share one; the four updates
    # are one kernel (6 kernels and 13 other calls before reductions and siblings merged, 4
    # update launches before they were batched): what is left are three reshapes (views).
    kernels = [line for line in description.splitlines() if line.startswith("  kernel ")]
    assert kernels[3].startswith("  kernel 3: <UpdateBatch [sgd_update(momentum=0.0, nesterov=False) of 4 float32 "
                                 "variables, 10 elements]>"), description
    assert kernels[2].count(", reduce_sum(axis=(0,), keepdims=True) into [1,3]") == 3, description
    assert "extern \"C\" __global__ void __launch_bounds__(64) gg_fused_" in description
    before = [v.numpy().copy() for v in variables]
    run(x, y)
    assert all(not np.array_equal(b, v.numpy()) for b, v in zip(before, variables))


def test_the_fused_replay_drops_each_intermediate_after_its_last_reader():
    """So that inside a graph capture the pool reuses an intermediate's block for later ones:
    every slot the replay computes, but its results, is deleted once, after its last reader."""
    from test_graphs import _net
    step, _, x, y = _net("cpu", "float32", gg.optimizers.SGD(0.1))
    program = program_of(step, x, y)
    device, _ = graphs.fused_device_replay(program, _numpy_group,
                                           lambda batch: lambda *inputs: batch.run_reference(inputs))
    lines = [line.strip() for line in device.source.splitlines()[1:]]
    deleted = [name for line in lines if line.startswith("del ") for name in line[4:].split(", ")]
    assigned = {name.strip() for line in lines if "=" in line and not line.startswith(("return", "del"))
                for name in line.split("=")[0].split(",") if name.strip()}
    results = {name.strip() for name in lines[-1][len("return ("):-1].split(",") if name.strip()}
    assert len(deleted) == len(set(deleted)) and set(deleted) == assigned - results, device.source
    for name in deleted:  # right after the line of its last use
        words = [line.replace(",", " ").replace("(", " ").replace(")", " ").split() for line in lines]
        last_use = max(k for k, line in enumerate(lines) if name in words[k] and not line.startswith("del "))
        assert lines[last_use + 1].startswith("del ") and name in words[last_use + 1], (name, device.source)
