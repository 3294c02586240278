"""The examples run and print what the seed tutorials quote."""
import pathlib
import subprocess
import sys

from gpugrad.tape import REGISTRY

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def test_derivatives_tour_prints_every_seed_value():
    run = subprocess.run([sys.executable, str(EXAMPLES / "derivatives_tour.py"), "--device", "cpu"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "MISMATCH" not in run.stdout
    assert "[ok] seed 003  second derivatives through nested tapes" in run.stdout
    last = run.stdout.strip().splitlines()[-1]
    matched, total = int(last.split()[0]), int(last.split()[2])
    assert matched == total >= 45, last


ROOT = EXAMPLES.parent


def test_readme_python_examples_run():
    """Every ```python block of the README runs as written (primitives it registers are
    removed afterwards, so that the registry stays as the library defines it)."""
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
