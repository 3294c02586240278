"""The examples run and print what the TensorFlow 2 tutorials this project grew from quote."""
import pathlib
import subprocess
import sys

import pytest

from gpugrad.dispatch import REGISTRY
from helpers import has_cuda

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def test_derivatives_tour_prints_every_tutorial_value():
    run = subprocess.run([sys.executable, str(EXAMPLES / "derivatives_tour.py"), "--device", "cpu"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "MISMATCH" not in run.stdout
    assert "[ok] GradientTape  second derivatives through nested tapes" in run.stdout
    last = run.stdout.strip().splitlines()[-1]
    matched, total = int(last.split()[0]), int(last.split()[2])
    assert matched == total >= 45, last


ROOT = EXAMPLES.parent


def test_readme_python_examples_run(tmp_path, monkeypatch):
    """Every ```python block of the README runs as written, in an empty folder (primitives
    it registers are removed afterwards, so that the registry stays as the library defines it)."""
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "README.md").read_text()
    blocks = [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]
    assert len(blocks) >= 2
    before = set(REGISTRY)
    try:
        for block in blocks:
            exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    finally:
        for name in set(REGISTRY) - before:
            del REGISTRY[name]


def test_training_benchmark_runs_and_agrees():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_training.py"), "--steps", "3",
                          "--repeats", "1"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "gpugrad gg.function" in run.stdout and "wide:" in run.stdout and "vs numpy" in run.stdout


def _run_example(name, *args):
    run = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_two_layer_regression_trains_plots_and_checkpoints(tmp_path):
    """The main job with the tutorials' settings: the loss every 20 steps, a PNG, a checkpoint
    that safetensors reads, the named partial derivatives, and a fitted curve."""
    import safetensors.numpy

    out = _run_example("two_layer_regression.py", "--device", "cpu", "--out", str(tmp_path))
    losses = [float(line.split("Loss:")[1]) for line in out.splitlines() if "Loss:" in line]
    assert len(losses) == 100  # steps 0, 20, ..., 1980
    final = float(out.split("final loss:")[1].split()[0])
    assert final < 0.01 < losses[0], (final, losses[0])  # the noise alone is 0.0025
    for name in ("hidden/kernel", "hidden/bias", "output/kernel", "output/bias"):
        assert f"d loss / d {name}" in out
    assert (tmp_path / "two_layer_regression.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = safetensors.numpy.load_file(str(tmp_path / "two_layer_regression.safetensors"))
    assert saved["model/hidden/kernel"].shape == (1, 3) and saved["optimizer/iterations"] == 2000


def test_two_layer_regression_options(tmp_path):
    out = _run_example("two_layer_regression.py", "--quiet", "--steps", "30", "--hidden", "8", "--points", "50",
                       "--optimizer", "adam", "--lr", "0.05", "--seed", "1", "--out", str(tmp_path))
    assert "Loss:" not in out and "final loss:" in out and "8 sigmoid" in out


def test_linear_regression_prints_epochs_as_the_tutorial():
    out = _run_example("linear_regression.py", "--epochs", "20")
    epochs = [line for line in out.splitlines() if line.startswith("epoch:")]
    assert len(epochs) == 20
    first_loss = float(epochs[0].split("loss:")[1].split()[0])
    last_loss = float(epochs[-1].split("loss:")[1].split()[0])
    assert first_loss > 10 > 1 > last_loss  # the tutorial's pattern: large, then small
    assert abs(float(out.split("w = ")[1].split(",")[0]) - 3) < 0.05


def test_custom_gradient_example_learns_only_with_straight_through():
    out = _run_example("custom_gradient.py", "--steps", "200")
    plain, straight = [line for line in out.splitlines() if "signs matching" in line]
    assert "largest first |gradient| 0 " in plain
    assert straight.rstrip().endswith("100%")


@pytest.mark.skipif(has_cuda(), reason="a GPU is visible: bench/bench_gpu.py is run by hand there")
def test_gpu_benchmark_says_why_it_skips_without_a_gpu():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_gpu.py")], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("skipped: device 'cuda' is not available: ")
