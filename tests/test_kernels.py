"""The fused CUDA kernels (cuda_kernels/*.cu, launched by gpugrad/kernels.py). On the CPU: every .cu
compiles with nvcc, every kernel has a launcher, the launchers check their input, and the wheel ships
the kernels. On a GPU: every kernel against its NumPy reference, at odd sizes and on strided views."""
import inspect
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import numpy as np
import pytest

from gpugrad import kernels, primitives

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "cuda_kernels").glob("*.cu"))
INSTANTIATION = re.compile(r"template\s+__global__\s+void\s+(\w+)\s*<\s*(\w+)\s*>\s*\(([^)]*)\)\s*;")
UPDATES = ["sgd_update", "adam_update", "rmsprop_update", "adagrad_update"]


def _instantiations(path):
    """{(kernel, C type): [parameter types]} of the explicit instantiations in a .cu file."""
    return {(name, ctype): [" ".join(p.split()) for p in parameters.split(",")]
            for name, ctype, parameters in INSTANTIATION.findall(path.read_text())}


# ---------------------------------------------------------------------------------------
# CPU: sources, launchers, packaging

def test_every_kernel_family_is_there():
    assert {p.stem for p in SOURCES} == {"sigmoid_backward", "tanh_backward", "relu_backward", "square_backward",
                                         "squared_difference_backward", "bias_gradient", *UPDATES}


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_kernel_compiles_with_nvcc(path, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH (ci/run.sh compiles the kernels where it is)")
    result = subprocess.run([nvcc, "--std=c++17", "-arch=sm_80", "-c", "-o", str(tmp_path / f"{path.stem}.o"),
                             str(path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_kernel_source_opens_with_its_contract_and_includes_nothing(path):
    text = path.read_text()
    assert text.startswith(f"// {path.stem}:")
    assert "Reference:" in text.split("template")[0]
    # NVRTC compiles it at run time without the CUDA headers: only the kernel folder's own
    # headers are included, and kernels.py inlines them into the source it compiles.
    compiled = kernels._source(path.stem)
    assert "#include" not in compiled
    for header in re.findall(r'^#include "(\w+\.cuh)"', text, re.MULTILINE):
        assert (ROOT / "cuda_kernels" / header).read_text() in compiled


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_every_kernel_has_a_launcher(path):
    found = _instantiations(path)
    stem = path.stem
    assert set(found) == {(stem, "float"), (stem, "double")}  # one family per file, named after it
    for ctype in ("float", "double"):
        parameters = found[stem, ctype]
        inputs = len(parameters) - 2
        if parameters == [f"{ctype}*"] + [f"const {ctype}*"] * inputs + ["long long"]:
            # Elementwise: kernels.launch takes it, with one input per input of the primitive it fuses.
            assert len(inspect.signature(getattr(primitives, stem)).parameters) == inputs  # the xp forward's
            arrays = [np.zeros(3, np.float32 if ctype == "float" else np.float64)] * inputs
            with pytest.raises((RuntimeError, TypeError)):  # past the checks: no CuPy, or not CuPy arrays
                kernels.launch(stem, *arrays)
        else:
            assert callable(getattr(kernels, stem, None)), f"kernels.py has no launcher for {stem}"


@pytest.mark.parametrize("name", UPDATES)
def test_update_launchers_take_the_update_primitive_signature_and_a_stream(name):
    reference = list(inspect.signature(getattr(primitives, name)).parameters)  # the forward's
    assert list(inspect.signature(getattr(kernels, name)).parameters) == reference + ["stream"]


@pytest.mark.parametrize("launcher", [kernels.launch, kernels.bias_gradient, *(getattr(kernels, n) for n in UPDATES)])
def test_every_launcher_takes_a_stream(launcher):
    parameter = inspect.signature(launcher).parameters["stream"]
    assert parameter.default is None


def test_source_dir_holds_the_kernels():
    assert sorted(p.name for p in kernels.source_dir().glob("*.cu")) == [p.name for p in SOURCES]


def _f32(*shape):
    return np.zeros(shape, np.float32)


_LR = np.array([0.1])  # an update's per-step scalars


@pytest.mark.parametrize("call, message", [
    (lambda: kernels.launch("sigmoid_backward", _f32(3), _f32(4)), "does not match"),
    (lambda: kernels.launch("sigmoid_backward", _f32(3), np.zeros(3)), "does not match"),
    (lambda: kernels.launch("sigmoid_backward", np.zeros(3, np.float16), np.zeros(3, np.float16)), "float16"),
    (lambda: kernels.launch("sigmoid_backward", _f32(3)), "got 1 inputs"),
    (lambda: kernels.launch("no_such_kernel", _f32(3)), "known kernels"),
    (lambda: kernels.launch("sgd_update", _f32(3), _f32(3)), "got 2 inputs"),
    (lambda: kernels.bias_gradient(_f32(3)), "2-D"),
    (lambda: kernels.bias_gradient(np.zeros((3, 2), np.int32)), "int32"),
    (lambda: kernels.sgd_update(_f32(2, 3)[:, ::2], _f32(2, 2), None, _LR, momentum=0.0, nesterov=False),
     "C-contiguous"),
    (lambda: kernels.sgd_update(_f32(3), _f32(3), _f32(4), _LR, momentum=0.9, nesterov=False), "velocity"),
    (lambda: kernels.sgd_update(_f32(3), np.zeros(3), None, _LR, momentum=0.0, nesterov=False), "grad"),
    (lambda: kernels.sgd_update(_f32(3), _f32(3), None, _f32(1), momentum=0.0, nesterov=False), "scalars"),
    (lambda: kernels.adam_update(_f32(3), _f32(3), _f32(3), _f32(3), np.zeros(3), np.zeros(2), beta_1=0.9,
                                 beta_2=0.999, epsilon=1e-7, weight_decay=0.0), "vhat"),
    (lambda: kernels.rmsprop_update(_f32(3), _f32(3), None, None, None, _LR, rho=0.9, momentum=0.0, epsilon=1e-7),
     "velocity is None"),
    (lambda: kernels.adagrad_update(_f32(4), _f32(4), _f32(4).T[::2], _LR, epsilon=1e-7), "accumulator"),
])
def test_launchers_check_their_input_first(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_wheel_ships_the_kernels(tmp_path):
    """A non-editable install finds the kernels: build the wheel offline from a copy of the build
    inputs, unzip it, and import gpugrad from there alone (plus site-packages for numpy)."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, project / name)
    for name in ("gpugrad", "cuda_kernels"):
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(project)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    [wheel] = (tmp_path / "dist").glob("gpugrad-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = sorted(n for n in archive.namelist() if n.startswith("gpugrad/cuda_kernels/"))
        headers = sorted((ROOT / "cuda_kernels").glob("*.cuh"))
        assert shipped == sorted(f"gpugrad/cuda_kernels/{p.name}" for p in SOURCES + headers)  # nothing else
        archive.extractall(tmp_path / "installed")
    # -S -I: no site-packages .pth files (an editable install of this checkout) and no PYTHONPATH.
    paths = [str(tmp_path / "installed")] + sorted({sysconfig.get_paths()[k] for k in ("purelib", "platlib")})
    code = ("import sys; sys.path[:0] = sys.argv[1:]; import gpugrad, gpugrad.kernels as k; print(gpugrad.__file__); "
            "print(k.source_dir()); print(*sorted(p.name for p in k.source_dir().glob('*.cu')))")
    run = subprocess.run([sys.executable, "-S", "-I", "-c", code, *paths], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    module_file, folder, names = run.stdout.splitlines()
    installed = (tmp_path / "installed").resolve()
    assert pathlib.Path(module_file).resolve().is_relative_to(installed)
    assert pathlib.Path(folder) == installed / "gpugrad" / "cuda_kernels"
    assert names.split() == [p.name for p in SOURCES]


# ---------------------------------------------------------------------------------------
# GPU: every kernel against its NumPy reference (skipped without a CUDA device)

SIZES = [1, 31, 1025, 2**20 + 3]
FLOATS = [np.float32, np.float64]


@pytest.fixture
def cupy():
    return pytest.importorskip("cupy")


def _same(got, want):
    """got (a CuPy array) equals want (NumPy) bit for bit. The kernels round each operation to the
    dtype in the reference's order, with no FMA contraction, so only subnormal float32 values (which
    CuPy's -ftz=true flushes to zero) could differ, and these inputs produce none."""
    got = got.get()
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.isfinite(got).all(), "an element was left unwritten (NaN poison) or went non-finite"
    np.testing.assert_array_equal(got, want)


def _poison(cupy, shape, dtype):
    """Free a NaN-filled block of this size, which CuPy's memory pool hands to the next allocation of
    the same size: an output element that a kernel leaves unwritten then reads NaN."""
    cupy.full(shape, np.nan, dtype)


def _views(cupy, host, layout):
    """A device copy of `host`: contiguous, or a strided view holding the same values."""
    if layout == "contiguous":
        return cupy.asarray(host)
    spread = cupy.zeros((2 * host.size,), host.dtype)
    spread[::2] = cupy.asarray(host.ravel())
    return spread[::2].reshape(host.shape)


ELEMENTWISE = {  # kernel: the generators of its inputs, in order
    "sigmoid_backward": (lambda r, n: r.normal(size=n), lambda r, n: r.uniform(0, 1, n)),
    "tanh_backward": (lambda r, n: r.normal(size=n), lambda r, n: r.uniform(-1, 1, n)),
    "relu_backward": (lambda r, n: r.normal(size=n), lambda r, n: np.maximum(r.normal(size=n), 0)),
    "square_backward": (lambda r, n: r.normal(size=n), lambda r, n: r.normal(size=n)),
    "squared_difference_backward": (lambda r, n: r.normal(size=n), lambda r, n: r.normal(size=n),
                                    lambda r, n: r.normal(size=n)),
}


@pytest.mark.gpu
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_kernel_matches_its_primitive(name, dtype, size, layout, cupy, rng):
    host = [make(rng, size).astype(dtype) for make in ELEMENTWISE[name]]
    want = getattr(primitives, name).forward(*host)
    device = [_views(cupy, x, layout) for x in host]
    _poison(cupy, (size,), dtype)
    _same(kernels.launch(name, *device), want)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", FLOATS)
def test_elementwise_kernel_keeps_a_2d_shape_and_propagates_nan_as_numpy(dtype, cupy, rng):
    dy = rng.normal(size=(5, 7)).astype(dtype)
    y = np.maximum(rng.normal(size=(5, 7)), 0).astype(dtype)
    dy[0, :3] = [np.nan, np.inf, -1.0]
    y[0, :3] = 0.0  # NumPy's dy * (y > 0): NaN, NaN and -0 where the mask is 0
    got = kernels.launch("relu_backward", cupy.asarray(dy), cupy.asfortranarray(cupy.asarray(y))).get()
    with np.errstate(invalid="ignore"):  # inf * 0
        want = primitives.relu_backward.forward(dy, y)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


BIAS_SHAPES = [(1, 1), (31, 3), (300, 3), (1025, 64), (1025, 300), (5, 1025), (0, 4), (2**20 + 3, 1),
               (2**20 + 3, 3), (2**16 + 1, 64), (4097, 257)]


@pytest.mark.gpu
@pytest.mark.parametrize("shape", BIAS_SHAPES, ids=[f"{r}x{c}" for r, c in BIAS_SHAPES])
@pytest.mark.parametrize("dtype", FLOATS)
def test_bias_gradient_sums_columns_exactly(shape, dtype, cupy, rng):
    # Small integers: every partial sum is exact in float32, so any order of addition gives the
    # reference bit for bit, and a missed or doubled element shows.
    host = rng.integers(-8, 9, size=shape).astype(dtype)
    _poison(cupy, (shape[1],), dtype)
    got = kernels.bias_gradient(cupy.asarray(host))
    np.testing.assert_array_equal(got.get(), primitives.reduce_sum.forward(host, axis=(0,), keepdims=False))


@pytest.mark.gpu
@pytest.mark.parametrize("layout", ["transposed", "strided"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_bias_gradient_of_a_view_matches_the_reference_to_rounding(layout, dtype, cupy, rng):
    host = rng.normal(size=(1025, 67)).astype(dtype)
    device = cupy.asarray(host.T.copy()).T if layout == "transposed" else _views(cupy, host, "strided")
    got = kernels.bias_gradient(device).get()
    exact = host.astype(np.float64).sum(axis=0)
    scale = np.abs(host).astype(np.float64).sum(axis=0)
    assert np.all(np.abs(got - exact) <= 64 * np.finfo(dtype).eps * scale)
    first = kernels.bias_gradient(device).get()
    np.testing.assert_array_equal(got, first)  # no atomics: the same sums every time


# Each case: update name, the states it keeps (None where the option is off), the per-step scalars as a
# function of the step (from 1), the static hyperparameters.
def _adam_scalars(lr, beta_1, beta_2, weight_decay):
    return lambda t: [lr * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t), lr * weight_decay]


UPDATE_CASES = {
    "sgd": ("sgd_update", [None], lambda t: [0.1], dict(momentum=0.0, nesterov=False)),
    "sgd-momentum": ("sgd_update", ["zeros"], lambda t: [0.1 / t], dict(momentum=0.9, nesterov=False)),
    "sgd-nesterov": ("sgd_update", ["zeros"], lambda t: [0.1], dict(momentum=0.9, nesterov=True)),
    "adam": ("adam_update", ["zeros", "zeros", None], _adam_scalars(0.01, 0.9, 0.999, 0.0),
             dict(beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=0.0)),
    "adam-amsgrad": ("adam_update", ["zeros", "zeros", "zeros"], _adam_scalars(0.01, 0.9, 0.999, 0.0),
                     dict(beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=0.0)),
    "adamw-amsgrad": ("adam_update", ["zeros", "zeros", "zeros"], _adam_scalars(0.01, 0.8, 0.99, 0.004),
                      dict(beta_1=0.8, beta_2=0.99, epsilon=1e-6, weight_decay=0.004)),
    "rmsprop": ("rmsprop_update", ["zeros", None, None], lambda t: [0.01], dict(rho=0.9, momentum=0.0, epsilon=1e-7)),
    "rmsprop-centered": ("rmsprop_update", ["zeros", "zeros", None], lambda t: [0.01],
                         dict(rho=0.9, momentum=0.0, epsilon=1e-7)),
    "rmsprop-momentum": ("rmsprop_update", ["zeros", None, "zeros"], lambda t: [0.01],
                         dict(rho=0.8, momentum=0.5, epsilon=1e-7)),
    "rmsprop-centered-momentum": ("rmsprop_update", ["zeros", "zeros", "zeros"], lambda t: [0.01],
                                  dict(rho=0.9, momentum=0.9, epsilon=1e-7)),
    "adagrad": ("adagrad_update", ["ones"], lambda t: [0.1 * t], dict(epsilon=1e-7)),
}
STEP_SCALES = [1.0, 0.1, 2.0, 0.05]  # gradients shrink and grow, so amsgrad's max differs from v


@pytest.mark.gpu
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", sorted(UPDATE_CASES))
def test_update_kernel_matches_the_reference_update(case, dtype, size, layout, cupy, rng):
    name, states, scalars_at, hyper = UPDATE_CASES[case]
    reference = getattr(primitives, name).forward  # on host arrays: the xp reference
    fused = getattr(kernels, name)
    param = rng.normal(size=size).astype(dtype)
    host_states = [None if s is None else getattr(np, s)(size, dtype) for s in states]
    device_param = cupy.asarray(param)
    device_states = [None if s is None else cupy.asarray(s) for s in host_states]
    for step, scale in enumerate(STEP_SCALES, start=1):
        grad = (scale * rng.normal(size=size)).astype(dtype)
        device_grad = _views(cupy, grad, layout)  # grad may be any layout; param and states not
        scalars = np.array(scalars_at(step), np.float64)
        reference(param, grad, *host_states, scalars, **hyper)
        fused(device_param, device_grad, *device_states, cupy.asarray(scalars), **hyper)
        _same(device_param, param)
        for host_state, device_state in zip(host_states, device_states):
            if host_state is not None:
                _same(device_state, host_state)


class _FakeModule:
    """Stands in for cupy.RawModule: records what it was asked to compile."""

    compiled = []

    def __init__(self, code, options, name_expressions):
        self.code = code
        _FakeModule.compiled.append((code, tuple(options), tuple(name_expressions)))

    def get_function(self, name):
        return name


@pytest.fixture
def fake_cupy(monkeypatch):
    """kernels.py compiling through _FakeModule, with its caches empty before and after."""
    monkeypatch.setattr(kernels, "_cupy", lambda: type("FakeCupy", (), {"RawModule": _FakeModule}))
    for cached in (kernels.compile_source, kernels._kernel):
        cached.cache_clear()
    _FakeModule.compiled.clear()
    yield _FakeModule.compiled
    for cached in (kernels.compile_source, kernels._kernel):
        cached.cache_clear()


def test_compile_source_compiles_each_text_once_and_names_its_instantiations(fake_cupy):
    source = ("template <typename T> __global__ void twice(T* out, const T* x, long long n) {}\n"
              "template __global__ void twice<float>(float*, const float*, long long);\n")
    first = kernels.compile_source(source)
    assert kernels.compile_source("" + source) is first  # an equal text, not the same object
    assert kernels.compile_source(source.replace("twice", "thrice")) is not first
    assert [names for _, _, names in fake_cupy] == [("twice<float>",), ("thrice<float>",)]
    assert all("--std=c++17" in options for _, options, _ in fake_cupy)


def test_a_kernel_file_compiles_through_the_same_route_once(fake_cupy):
    assert kernels._kernel("sigmoid_backward", np.dtype("float32")) == "sigmoid_backward<float>"
    assert kernels._kernel("sigmoid_backward", np.dtype("float64")) == "sigmoid_backward<double>"
    assert [code for code, _, _ in fake_cupy] == [kernels._source("sigmoid_backward")]


def test_compile_source_inlines_the_kernel_folders_headers(fake_cupy):
    kernels.compile_source.cache_clear()
    kernels.compile_source('#include "expressions.cuh"\nextern "C" __global__ void k() {}\n')
    code, _, names = _FakeModule.compiled[-1]
    assert "#include" not in code and "#define GG_EXPRESSIONS_CUH" in code and names == ()
