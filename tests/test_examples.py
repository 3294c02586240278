"""The examples run and print what the TensorFlow 2 tutorials this project grew from quote."""
import importlib.util
import os
import pathlib
import re
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


def test_readme_migration_table_names_only_gpugrad_apis_that_exist():
    """The 'Coming from TensorFlow 2 or PyTorch' table: every gg.* name and every method it
    calls on a tape, an optimizer, a Variable, a Tensor or a Module exists."""
    import gpugrad as gg

    text = (ROOT / "README.md").read_text()
    section = text.split("## Coming from TensorFlow 2 or PyTorch\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0][:2] == ["| task", "gpugrad"] and len(rows) >= 15
    owners = {"tape": gg.GradientTape, "opt": gg.optimizers.Optimizer, "w": gg.Variable, "t": gg.Tensor,
              "x": gg.Tensor, "model": gg.Module}
    checked = 0
    for row in rows[1:]:
        for code in re.findall(r"`([^`]+)`", row[1]):
            for dotted in re.findall(r"\bgg(?:\.\w+)+", code):
                target = gg
                for part in dotted.split(".")[1:]:
                    assert hasattr(target, part), (dotted, row[0])
                    target = getattr(target, part)
                checked += 1
            for owner, attribute in re.findall(r"\b(tape|opt|w|t|x|model)\.(\w+)", code):
                assert hasattr(owners[owner], attribute), (f"{owner}.{attribute}", row[0])
                checked += 1
    assert checked >= 30


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

    run = subprocess.run([sys.executable, str(EXAMPLES / "two_layer_regression.py"), "--device", "cpu", "--out",
                          str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    loss_lines = [line for line in out.splitlines() if "Loss:" in line]
    # Not a terminal (pipes here, as in a log or CI): each loss line once, in order, and no progress bar.
    assert [int(line.split()[1]) for line in loss_lines] == list(range(0, 2000, 20))
    assert "\r" not in out + run.stderr and "step/s" not in out + run.stderr and "%|" not in out + run.stderr
    assert run.stderr == ""
    losses = [float(line.split("Loss:")[1]) for line in loss_lines]
    final = float(out.split("final loss:")[1].split()[0])
    assert re.search(r"^final loss: \d\.\d{6}$", out, re.MULTILINE)  # the line CI and the README quote
    assert final < 0.01 < losses[0], (final, losses[0])  # the noise alone is 0.0025
    for name in ("hidden/kernel", "hidden/bias", "output/kernel", "output/bias"):
        line = next(line for line in out.splitlines() if f"d loss / d {name}" in line)
        values = line.split("=")[1].strip(" []").split(", ")
        assert values and all(value == f"{float(value):.6g}" for value in values), line  # 6 digits
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


@pytest.mark.parametrize("epochs", ["20", "32"])
def test_linear_regression_ends_near_the_truth_or_says_it_has_not_converged(epochs):
    """Its last lines never claim a fit it has not reached: b ends near 1 (it starts there), far
    from the true 2, and the output says so in words."""
    out = _run_example("linear_regression.py", "--epochs", epochs)
    w = float(out.split("w = ")[1].split(",")[0])
    b = float(out.split("b = ")[1].split(";")[0])
    verdict = out.strip().splitlines()[-1]
    if abs(w - 3) < 0.05 and abs(b - 2) < 0.25:
        assert verdict.startswith("converged"), verdict
    else:
        assert verdict.startswith("not converged: ") and "b is " in verdict, verdict
    assert abs(b - 2) > 0.25  # the tutorial's settings leave b behind; if that changes, so must the docstring


def test_spiral_classifier_learns_the_spirals_and_saves_both_plots(tmp_path):
    """A short configuration of the fit-loop example: one line per epoch (output into a pipe),
    a validation accuracy well above chance (1/3), the final accuracies, and the two PNGs."""
    out = _run_example("spiral_classifier.py", "--device", "cpu", "--epochs", "25", "--points", "120", "--seed", "1",
                       "--out", str(tmp_path))
    epochs = [line for line in out.splitlines() if line.startswith("Epoch ")]
    assert [line.split()[1] for line in epochs] == [f"{e}/25" for e in range(1, 26)]
    assert all("val_accuracy: " in line for line in epochs) and "\r" not in out
    train = float(re.search(r"^final train accuracy: (\d\.\d{4})$", out, re.MULTILINE).group(1))
    validation = float(re.search(r"^final validation accuracy: (\d\.\d{4})$", out, re.MULTILINE).group(1))
    assert train > 0.9 and validation > 0.85, out
    assert validation == pytest.approx(float(epochs[-1].split("val_accuracy: ")[1]), abs=1e-4)
    for name in ("spiral_decision_boundary.png", "spiral_history.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_spiral_classifier_in_a_terminal_draws_a_bar_per_epoch(tmp_path):
    text = _run_in_a_terminal("spiral_classifier.py", "--device", "cpu", "--epochs", "3", "--out", str(tmp_path))
    lines = re.split(r"[\r\n]+", text)  # the bar redraws itself after a carriage return
    for epoch in (1, 2, 3):  # 480 training points: 15 batches of 32, then the validation values
        finished = [line for line in lines if line.startswith(f"Epoch {epoch}/3 15/15 |")]
        assert finished and "val_accuracy: " in finished[-1], text
    assert not any(re.match(r"Epoch \d+/3 - ", line) for line in lines)  # no plain lines beside the bars
    assert "final validation accuracy:" in text


def test_spiral_classifier_rejects_bad_settings_in_one_line(tmp_path):
    for flags, message in ((["--classes", "1"], "--classes must be at least 2"),
                           (["--validation-split", "1.5"], "--validation-split must lie strictly between 0 and 1"),
                           (["--batch-size", "0"], "--batch-size must be at least 1")):
        run = subprocess.run([sys.executable, str(EXAMPLES / "spiral_classifier.py"), *flags, "--out", str(tmp_path)],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and run.stdout == "" and "Traceback" not in run.stderr, run.stderr
        assert run.stderr.splitlines()[-1] == f"spiral_classifier.py: error: {message}, got {flags[1]}"


def _example_module(name):
    spec = importlib.util.spec_from_file_location(f"example_{name[:-3]}", EXAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines the functions; main() runs only as a script
    return module


EXAMPLE_SCRIPTS = sorted(path.name for path in EXAMPLES.glob("*.py"))


def test_every_example_is_covered_here():
    assert EXAMPLE_SCRIPTS == ["custom_gradient.py", "derivatives_tour.py", "linear_regression.py",
                               "spiral_classifier.py", "two_layer_regression.py"]


@pytest.mark.parametrize("name", EXAMPLE_SCRIPTS)
def test_example_help_lists_every_flag_with_its_help(name):
    parser = _example_module(name).make_parser()
    run = subprocess.run([sys.executable, str(EXAMPLES / name), "--help"], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "COLUMNS": "100"})
    assert run.returncode == 0 and run.stderr == "", run.stderr
    flags = [action for action in parser._actions if action.option_strings]
    assert any("--device" in action.option_strings for action in flags)
    for action in flags:
        assert action.help and len(action.help) > 10, (name, action.option_strings)
        for flag in action.option_strings:
            assert re.search(rf"(^|[\s,\[]){re.escape(flag)}\b", run.stdout), (name, flag)
        assert action.help.split()[0] in run.stdout  # the help text itself is printed


def _bad_device(name, device):
    run = subprocess.run([sys.executable, str(EXAMPLES / name), "--device", device], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert errors == [run.stderr.splitlines()[-1]], run.stderr  # one line, after argparse's usage
    assert errors[0].startswith(f"{name}: error: "), errors
    return errors[0]


@pytest.mark.parametrize("name", EXAMPLE_SCRIPTS)
def test_example_rejects_an_unknown_device_in_one_line(name):
    assert "unknown device 'tpu'" in _bad_device(name, "tpu")


@pytest.mark.skipif(has_cuda(), reason="a GPU is visible: --device cuda is valid here")
@pytest.mark.parametrize("name", EXAMPLE_SCRIPTS)
def test_example_says_in_one_line_that_cuda_is_not_available(name):
    assert "device 'cuda' is not available" in _bad_device(name, "cuda")


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_two_layer_regression_in_a_terminal_writes_loss_lines_above_a_progress_bar(tmp_path):
    text = _run_in_a_terminal("two_layer_regression.py", "--device", "cpu", "--steps", "60", "--out", str(tmp_path))
    lines = re.split(r"[\r\n]+", text)  # the bar redraws itself after a carriage return
    for step in (0, 20, 40):
        assert sum(line.strip().startswith(f"step {step:4d}  Loss:") for line in lines) == 1, text
    assert "60/60" in text and "step/s" in text, text  # the bar, finished
    assert "final loss:" in text


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


def _run_in_a_terminal(script, *args):
    """What `script` with `args` writes to a 120-column pseudo-terminal (its stdout and
    stderr), once it exited with status 0."""
    import fcntl
    import struct
    import termios

    main_fd, child_fd = os.openpty()
    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen([sys.executable, str(EXAMPLES / script), *args], stdin=subprocess.DEVNULL,
                               stdout=child_fd, stderr=child_fd, close_fds=True)
    os.close(child_fd)
    chunks = []
    while True:
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main_fd)
    assert process.wait(timeout=300) == 0
    return b"".join(chunks).decode()
