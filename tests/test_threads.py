"""Recording state is per thread, as TensorFlow's tape stack is: two threads training at once,
switching every microsecond, each get exactly their own gradients and their own gg.function
plans."""
import sys
import threading
import time

import numpy as np
import pytest

import gpugrad as gg

SECONDS = 1.5


@pytest.fixture
def fast_switching():
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def _run_in_threads(work, count=2):
    errors = []

    def run(index):
        try:
            work(index)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_two_threads_each_get_their_own_gradients(fast_switching):
    def work(index):
        scale = float(index + 2)
        w = gg.Variable([1.0, -1.0], name=f"w{index}")
        x = gg.constant([0.5, 2.0])
        deadline = time.monotonic() + SECONDS
        steps = 0
        while time.monotonic() < deadline:
            c = gg.constant([scale, 1.0])
            with gg.GradientTape() as tape:
                tape.watch(c)
                loss = gg.reduce_sum(w * x * c) * scale
            assert tape.watched_variables() == (w,)
            gw, gc_ = tape.gradient(loss, [w, c])
            assert gw is not None and gc_ is not None, f"thread {index} lost a gradient at step {steps}"
            np.testing.assert_array_equal(gw.numpy(), (x * c).numpy() * scale)
            np.testing.assert_array_equal(gc_.numpy(), (w * x).numpy() * scale)
            steps += 1
        assert steps > 10

    _run_in_threads(work)


def test_two_threads_training_with_gg_function_never_share_updates(fast_switching):
    def work(index):
        w = gg.Variable(np.full(3, float(index + 1), np.float32))
        x = gg.constant(np.arange(1.0, 4.0, dtype=np.float32))
        optimizer = gg.optimizers.SGD(0.01)

        @gg.function
        def step(target):
            with gg.GradientTape() as tape:
                loss = gg.reduce_sum(gg.square(w * x - target))
            optimizer.apply_gradients([(tape.gradient(loss, w), w)])
            return loss

        reference = w.numpy().astype(np.float64)
        xs = x.numpy().astype(np.float64)
        deadline = time.monotonic() + SECONDS
        steps = 0
        while time.monotonic() < deadline:
            target = float(index + steps % 3)
            step(gg.constant(np.full(3, target, np.float32)))
            reference -= 0.01 * 2 * (reference * xs - target) * xs
            steps += 1
            assert len(step._plans) == 1
        np.testing.assert_allclose(w.numpy(), reference, rtol=1e-4, atol=1e-5)
        assert optimizer.iterations == steps

    _run_in_threads(work)


def test_a_tape_recording_in_one_thread_does_not_record_another_threads_ops():
    recorded = {}
    with gg.GradientTape(persistent=True) as tape:
        x = gg.Variable(3.0)

        def other():
            recorded["y"] = x * x  # read in another thread: not this thread's tape

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        z = x * 2.0
    assert tape.gradient(recorded["y"], x) is None
    assert float(tape.gradient(z, x)) == 2.0


@pytest.mark.gpu
def test_a_device_block_in_one_thread_leaves_another_threads_default():
    inside, release = threading.Event(), threading.Event()
    seen = {}

    def other():
        with gg.device("cpu"):
            seen["other"] = gg.constant(1.0).device
            inside.set()
            release.wait(10)

    with gg.device("cuda:0"):
        thread = threading.Thread(target=other)
        thread.start()
        inside.wait(10)
        seen["main"] = gg.constant(1.0).device
        release.set()
        thread.join()
    assert seen == {"other": "cpu", "main": "cuda:0"}
