"""The examples run and print what the seed tutorials quote."""
import pathlib
import subprocess
import sys

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
