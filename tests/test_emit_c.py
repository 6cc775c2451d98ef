"""The C emitter (target c): every shared model variant emitted after -O, compiled
warning-free (scalar x86-64 and -march=native; gcc, and clang where installed), run
through ctypes against output.npy and the interpreter; the demo main.c under address
and undefined-behaviour sanitizers; the arena against the liveness lower bound; and
the errors (an op without a kernel: one line, exit 1, nothing written)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnefopt
from nnefopt.emit_c.runtime import CFLAGS
from nnefopt.frontend.tensor_file import write_tensor
from nnefopt.interp.ir_interpreter import Plan
from tests.c_build import COMPILERS, Library, compile_library, emitted
from tests.models import SHARED, variants

ROOT = Path(__file__).resolve().parents[1]
RTOL, ATOL = 1e-4, 1e-5
ARCHS = ("-march=x86-64", "-march=native")

# The quantized digits CNN is out of the float32 emitter's scope: refused by name below.
FLOAT_VARIANTS = [(name, path) for name, path in variants() if not name.startswith("cnn_digits_q8")]
QUANTIZED = [(name, path) for name, path in variants() if name.startswith("cnn_digits_q8")]


class _Emitted:
    def __init__(self, module, folder: Path):
        self.module = module
        self.folder = folder
        self.arena = _header_bytes(folder, "ARENA_BYTES")
        self.lower_bound = _header_bytes(folder, "ARENA_LOWER_BOUND_BYTES")
        self.libraries: dict[tuple[str, str], Library] = {}

    def library(self, arch: str, compiler: str = "gcc") -> Library:
        key = (compiler, arch)
        if key not in self.libraries:
            self.libraries[key] = Library(self.folder / compile_library(self.folder, arch, compiler))
        return self.libraries[key]


_EMITTED: dict[str, _Emitted] = {}


@pytest.fixture(scope="session")
def emitted_model(tmp_path_factory):
    """Each variant emitted once per session, each library compiled once per flags."""

    def get(name: str, path: Path) -> _Emitted:
        if name not in _EMITTED:
            folder = tmp_path_factory.mktemp("c") / name.replace("/", "_")
            _EMITTED[name] = _Emitted(emitted(path, folder), folder)
        return _EMITTED[name]

    return get


def _output_shapes(module) -> list[tuple]:
    plan = Plan(module)
    return [tuple(a.shape) for a in plan.run(plan.random_inputs(0)).values()]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name,path", FLOAT_VARIANTS, ids=[n for n, _ in FLOAT_VARIANTS])
def test_library_matches_the_reference_output(emitted_model, name, path, arch):
    model = emitted_model(name, path)
    expected = np.load(SHARED / name.split("/")[0] / "output.npy")
    x = np.load(SHARED / name.split("/")[0] / "input.npy")
    (got,) = model.library(arch).run([x], [expected.shape], model.arena)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name,path", FLOAT_VARIANTS, ids=[n for n, _ in FLOAT_VARIANTS])
def test_library_matches_the_interpreter_on_random_inputs(emitted_model, name, path, arch):
    model = emitted_model(name, path)
    plan = Plan(model.module)
    inputs = plan.random_inputs(7)
    expected = list(nnefopt.run(model.module, inputs).values())
    got = model.library(arch).run(list(inputs.values()), [e.shape for e in expected], model.arena)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name,path", FLOAT_VARIANTS, ids=[n for n, _ in FLOAT_VARIANTS])
def test_arena_is_the_liveness_lower_bound(emitted_model, name, path):
    model = emitted_model(name, path)
    assert 0 < model.lower_bound <= model.arena <= 1.05 * model.lower_bound
    assert model.arena % 64 == 0


@pytest.mark.parametrize("compiler", [c for c in COMPILERS if c != "gcc"])
@pytest.mark.parametrize("name,path", [v for v in FLOAT_VARIANTS if v[0].endswith("/kt")],
                         ids=[n for n, _ in FLOAT_VARIANTS if n.endswith("/kt")])
def test_other_compilers_build_it_warning_free_and_agree(emitted_model, name, path, compiler):
    model = emitted_model(name, path)
    expected = np.load(SHARED / name.split("/")[0] / "output.npy")
    x = np.load(SHARED / name.split("/")[0] / "input.npy")
    (got,) = model.library("-march=native", compiler).run([x], [expected.shape], model.arena)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_large_weights_go_to_an_incbin_blob(emitted_model):
    name, path = next(v for v in FLOAT_VARIANTS if v[0] == "resnet8/kt")
    folder = emitted_model(name, path).folder
    assembly = (folder / "model_weights.S").read_text()
    assert '.incbin "model_weights.bin"' in assembly and ".balign 64" in assembly
    blob = (folder / "model_weights.bin").stat().st_size
    assert blob % 64 == 0 and blob > 64 * 1024
    assert "model_blob + " in (folder / "model.c").read_text()
    # The small weights are exact hex floats.
    assert re.search(r"0x1\.[0-9a-f]+p-?\d+f", (folder / "model_weights.c").read_text())


def test_main_runs_npy_files_clean_under_sanitizers(emitted_model, tmp_path):
    name, path = next(v for v in FLOAT_VARIANTS if v[0] == "tiny_unet/kt")
    folder = emitted_model(name, path).folder
    flags = CFLAGS.replace("-O3", "-O1") + " -g -fsanitize=address,undefined -fno-sanitize-recover=all"
    build = subprocess.run(["make", "-B", "model_main", f"CFLAGS={flags}", "LDFLAGS=-fsanitize=address,undefined"],
                           cwd=folder, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    output = tmp_path / "y.npy"
    done = subprocess.run([str(folder / "model_main"), str(SHARED / "tiny_unet" / "input.npy"), str(output)],
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    np.testing.assert_allclose(np.load(output), np.load(SHARED / "tiny_unet" / "output.npy"), rtol=RTOL, atol=ATOL)
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((1, 3, 32, 32), np.float64))
    refused = subprocess.run([str(folder / "model_main"), str(wrong), str(output)], capture_output=True, text=True)
    assert refused.returncode == 1 and "float32" in refused.stderr


def _nnef_opt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnefopt.cli", *args], capture_output=True, text=True, cwd=ROOT)


def _write_graph(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "graph.nnef").write_text("version 1.0;\n" + body)
    return folder


def _emit_graph(tmp_path: Path, body: str, weights: dict[str, np.ndarray] | None = None,
                pipeline: str | None = "default"):
    """`body` and its weights (label -> array) as a model folder, loaded, optimized by
    `pipeline` and emitted to C: the module and the emitted folder."""
    folder = _write_graph(tmp_path / "m", body)
    for label, data in (weights or {}).items():
        write_tensor(folder / f"{label}.dat", data)
    module = nnefopt.load(folder)
    if pipeline:
        nnefopt.optimize(module, pipeline)
    out = tmp_path / "c"
    nnefopt.save(module, out, emit="c")
    return module, out


def _normal_weights(rng, shapes, scale: float = 1.0) -> dict[str, np.ndarray]:
    return {label: (rng.standard_normal(shape) * scale).astype(np.float32) for label, shape in shapes}


def _header_bytes(out: Path, name: str) -> int:
    """A byte count model.h defines (`ARENA_BYTES`, `ARENA_LOWER_BOUND_BYTES`)."""
    return int(re.search(rf"MODEL_{name} (\d+)u", (out / "model.h").read_text()).group(1))


def _agrees_with_the_interpreter(module, out: Path, arch: str, inputs: dict) -> tuple[list, list]:
    """The library emitted in `out`, built for `arch`, computes on `inputs` what the
    interpreter does (rtol/atol); returns (expected, got)."""
    library = Library(out / compile_library(out, arch))
    expected = list(nnefopt.run(module, inputs).values())
    got = library.run(list(inputs.values()), [e.shape for e in expected], _header_bytes(out, "ARENA_BYTES"))
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=RTOL, atol=ATOL)
    return expected, got


def test_an_op_without_a_c_kernel_is_one_error_line_and_nothing_written(tmp_path):
    model = _write_graph(tmp_path / "m", """
graph G( x ) -> ( y )
{
    x = external<scalar>(shape = [1, 4]);
    y = tile(x, repeats = [1, 2]);
}
""")
    out = tmp_path / "out"
    done = _nnef_opt(str(model), "-O", "--emit=c", "-o", str(out))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "'tile'" in lines[0] and "graph.nnef:6:9:" in lines[0], done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no output, no staging left


def test_a_quantized_model_is_refused_by_name(tmp_path):
    (name, path), = QUANTIZED
    done = _nnef_opt(str(path), "-O", "-q", "--emit=c", "-o", str(tmp_path / "out"))
    assert done.returncode == 1 and "quantized" in done.stderr and "graph.nnef:" in done.stderr
    assert not (tmp_path / "out").exists()


def test_c_prefix_names_files_and_symbols(tmp_path):
    model = SHARED / "mlp_digits" / "kt"
    out = tmp_path / "net"
    done = _nnef_opt(str(model), "-O", "-q", "--emit=c", "--c-prefix", "digits", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert {"digits.h", "digits.c", "digits_weights.c", "main.c", "Makefile"} <= {p.name for p in out.iterdir()}
    assert "int digits_run(const float *const *inputs, float *const *outputs, void *arena);" \
        in (out / "digits.h").read_text()
    library = Library(out / compile_library(out, "-march=x86-64", prefix="digits"), prefix="digits")
    x = np.load(SHARED / "mlp_digits" / "input.npy")
    expected = np.load(SHARED / "mlp_digits" / "output.npy")
    arena = int(re.search(r"DIGITS_ARENA_BYTES (\d+)u", (out / "digits.h").read_text()).group(1))
    np.testing.assert_allclose(library.run([x], [expected.shape], arena)[0], expected, rtol=RTOL, atol=ATOL)
    bad = _nnef_opt(str(model), "--emit=c", "--c-prefix", "9lives", "-o", str(tmp_path / "bad"))
    assert bad.returncode == 1 and "C identifier" in bad.stderr and not (tmp_path / "bad").exists()


def test_element_wise_chains_run_in_place_and_outputs_that_alias_are_copied(tmp_path):
    """exp -> relu -> neg: the relu and the neg overwrite the buffer whose tensor dies there, so the
    arena is one tensor; an output that is a reshape, a repeated output and an input
    returned as an output each get their own copy."""
    module, out = _emit_graph(tmp_path, """
graph G( x ) -> ( y, r, r2, x2, z )
{
    x = external<scalar>(shape = [2, 8]);
    e = exp(x);
    n = relu(e);
    m = neg(n);
    r = reshape(m, shape = [16]);
    r2 = copy(r);
    x2 = copy(x);
    y = add(m, 1.0);
    z = mul(x, [[2.0], [3.0]]);
}
""")
    text = (out / "model.c").read_text()
    _agrees_with_the_interpreter(module, out, "-march=x86-64", Plan(module).random_inputs(3))
    assert "nn_map_relu(A, A, 16" in text  # in place: the exp's buffer
    assert "nn_map_neg(A, A, 16" in text
    assert _header_bytes(out, "ARENA_BYTES") == 64  # e, n and m: one buffer of 16 floats


def test_repeated_outputs_and_an_input_returned_are_copied_at_the_end(tmp_path):
    model = _write_graph(tmp_path / "m", """
graph G( x ) -> ( r, r, x )
{
    x = external<scalar>(shape = [2, 8]);
    n = relu(x);
    r = reshape(n, shape = [16]);
}
""")
    module = nnefopt.load(model)  # no -O: the graph as written
    out = tmp_path / "c"
    nnefopt.save(module, out, emit="c")
    text = (out / "model.c").read_text()
    assert "nn_copy(outputs[0], outputs[1], 16);" in text and "nn_copy(inputs[0], outputs[2], 16);" in text
    library = Library(out / compile_library(out, "-march=x86-64"))
    x = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    r, r2, x2 = library.run([x], [(16,), (16,), (2, 8)], 64)
    np.testing.assert_array_equal(r, np.maximum(x, 0).reshape(16))
    np.testing.assert_array_equal(r2, r)
    np.testing.assert_array_equal(x2, x)


def test_lower_bound_is_the_most_bytes_live_at_once_and_place_reaches_it():
    from nnefopt.memory_plan import Buffer, lower_bound, place

    a, b, c = (Buffer(name, size, first, last) for name, size, first, last in
               (("a", 100, 0, 1), ("b", 50, 1, 2), ("c", 100, 2, 3)))
    assert lower_bound([a, b, c], 64) == 128 + 64  # a and b at 1, b and c at 2
    assert lower_bound([a, b, c]) == 150
    plan = place([a, b, c], 64)
    assert plan.peak_bytes == 192 and plan.offsets["a"] == plan.offsets["c"] == 0 and plan.offsets["b"] == 128


_WINDOWS = """
graph G( x, d ) -> ( strided, grouped, blocked, dw2, dw5, mult, short, up, upg, line, mp, ap, apc, near )
{
    x = external<scalar>(shape = [1, 8, 11, 19]);
    d = external<scalar>(shape = [1, 4, 23]);
    strided = conv(x, variable<scalar>(shape = [7, 8, 3, 3], label = 'a'), 0.5,
                   stride = [2, 2], padding = [(1, 1), (1, 2)]);
    grouped = conv(x, variable<scalar>(shape = [6, 4, 3, 3], label = 'b'), 0.0, groups = 2, dilation = [2, 1]);
    wide = conv(x, variable<scalar>(shape = [136, 8, 1, 1], label = 'c'), 0.0);
    blocked = relu(conv(wide, variable<scalar>(shape = [64, 136, 3, 3], label = 'e'), 0.0, padding = [(1, 1), (1, 1)]));
    dw2 = clamp(conv(x, variable<scalar>(shape = [8, 1, 3, 3], label = 'f'), 0.0, groups = 0, stride = [2, 2],
                     padding = [(1, 1), (1, 1)]), 0.0, 6.0);
    dw5 = conv(x, variable<scalar>(shape = [8, 1, 5, 5], label = 'g'), 0.0, groups = 8, padding = [(2, 2), (2, 2)]);
    mult = conv(x, variable<scalar>(shape = [16, 1, 3, 3], label = 'h'), 0.0, groups = 8);
    short = conv(strided, variable<scalar>(shape = [7, 1, 3, 3], label = 'l'), 0.0, groups = 0,
                 padding = [(1, 1), (1, 1)]);
    up = deconv(x, variable<scalar>(shape = [8, 5, 3, 3], label = 'i'), 0.25, stride = [2, 2],
                padding = [(1, 1), (1, 1)]);
    upg = deconv(x, variable<scalar>(shape = [8, 3, 2, 2], label = 'j'), 0.0, groups = 2, stride = [2, 2]);
    line = conv(d, variable<scalar>(shape = [5, 4, 3], label = 'k'), 0.0, padding = [(1, 1)]);
    mp = max_pool(x, size = [1, 1, 3, 3], stride = [1, 1, 2, 2], padding = [(0, 0), (0, 0), (1, 1), (1, 1)],
                  border = 'ignore');
    ap = avg_pool(x, size = [1, 1, 3, 3], padding = [(0, 0), (0, 0), (1, 1), (1, 1)], border = 'ignore');
    apc = avg_pool(x, size = [1, 1, 2, 2], stride = [1, 1, 2, 2], border = 'constant');
    near = nearest_upsample(x, factor = [2, 3]);
}
"""


@pytest.mark.parametrize("arch", ARCHS)
def test_conv_kernel_paths_match_the_interpreter(tmp_path, arch):
    """Each path of the conv kernels on odd shapes: strided with an uneven border, grouped
    and dilated, 16 positions of one row read in place and blocks across rows gathered, a
    filter cut in K blocks shared by position blocks (K = 1224, 64 rows),
    depthwise 3x3 at stride 2, on short rows, 5x5 and with two outputs per channel, deconvs that overlap
    and that are grouped, a 1-D conv; pools with and without borders, nearest upsampling."""
    shapes = (("a", (7, 8, 3, 3)), ("b", (6, 4, 3, 3)), ("c", (136, 8, 1, 1)), ("e", (64, 136, 3, 3)),
              ("f", (8, 1, 3, 3)), ("g", (8, 1, 5, 5)), ("h", (16, 1, 3, 3)), ("i", (8, 5, 3, 3)),
              ("j", (8, 3, 2, 2)), ("k", (5, 4, 3)), ("l", (7, 1, 3, 3)))
    # Small weights: the rounding of a 1224-term sum in another order stays under ATOL.
    module, out = _emit_graph(tmp_path, _WINDOWS, _normal_weights(np.random.default_rng(5), shapes, 0.1))
    text = (out / "model_kernels.c").read_text()
    assert all(f"model_nn_{kind}" in text for kind in ("conv2d_gemm", "depthwise", "deconv2d_gemm", "tile_6x16"))
    _agrees_with_the_interpreter(module, out, arch, Plan(module).random_inputs(11))


_DEPTHWISE = """
graph G( x, s ) -> ( a, b, c, d, e, f, g, h, k, m, n )
{
    x = external<scalar>(shape = [1, 4, 9, 38]);
    s = external<scalar>(shape = [1, 3, 13, 11]);
    a = clamp(conv(x, variable<scalar>(shape = [4, 1, 3, 3], label = 'a'), 0.5, groups = 0, stride = [2, 2],
                   padding = [(1, 1), (1, 1)]), 0.0, 6.0);
    b = relu(conv(x, variable<scalar>(shape = [4, 1, 3, 3], label = 'b'), 0.0, groups = 0, stride = [2, 2],
                  padding = [(0, 0), (0, 0)]));
    c = conv(x, variable<scalar>(shape = [4, 1, 3, 3], label = 'c'), 0.0, groups = 0, stride = [2, 2],
             padding = [(2, 1), (2, 2)]);
    d = conv(x, variable<scalar>(shape = [8, 1, 3, 3], label = 'd'), 0.0, groups = 4, stride = [2, 2],
             padding = [(1, 1), (1, 1)]);
    e = sigmoid(conv(x, variable<scalar>(shape = [4, 1, 3, 3], label = 'e'), 0.0, groups = 0,
                     padding = [(1, 1), (1, 1)]));
    f = clamp(conv(s, variable<scalar>(shape = [3, 1, 3, 3], label = 'f'), 0.0, groups = 0, stride = [2, 2],
                   padding = [(1, 1), (1, 1)]), 0.0, 6.0);
    g = conv(s, variable<scalar>(shape = [3, 1, 3, 3], label = 'g'), 0.0, groups = 0, stride = [2, 2],
             padding = [(1, 0), (0, 1)]);
    h = relu(conv(s, variable<scalar>(shape = [3, 1, 3, 3], label = 'h'), 0.0, groups = 0,
                  padding = [(1, 1), (1, 1)]));
    k = relu(conv(x, variable<scalar>(shape = [5, 4, 7, 7], label = 'k'), 0.0, stride = [2, 2],
                  padding = [(3, 3), (3, 3)]));
    m = conv(x, variable<scalar>(shape = [6, 4, 3, 3], label = 'm'), 0.0, stride = [2, 2], padding = [(0, 0), (0, 0)]);
    n = conv(s, variable<scalar>(shape = [4, 3, 1, 1], label = 'n'), 0.0, stride = [2, 2], padding = [(0, 0), (0, 0)]);
}
"""


@pytest.mark.parametrize("arch", ARCHS)
def test_depthwise_and_stride_2_paths_match_the_interpreter(tmp_path, arch):
    """The depthwise 3x3 kernel's paths: stride 2 through the four phases of the copied
    plane (bordered on both sides, on one side, evenly and not at all, odd and even
    widths, two outputs per channel), rows of 16 or more with a last run of under 8
    (the overlapping last vector), short rows as one long row at both strides, and
    an activation without a vector form (sigmoid: the portable loop on every path);
    dense convs at stride 2 reading rows split in even and odd columns (7x7 with an
    odd border, 3x3 without one), and a 1x1 one that gathers."""
    rng = np.random.default_rng(7)
    weights = _normal_weights(rng, [(label, (3 if label in "fgh" else 4, 1, 3, 3)) for label in "abcefgh"])
    weights |= _normal_weights(rng, (("d", (8, 1, 3, 3)), ("k", (5, 4, 7, 7)), ("m", (6, 4, 3, 3)),
                                     ("n", (4, 3, 1, 1))), 0.3)
    module, out = _emit_graph(tmp_path, _DEPTHWISE, weights)
    text = (out / "model.c").read_text()
    calls = re.findall(r"^    model_nn_(\w+)\(", text, re.M)
    assert len(calls) == 11 and "depthwise_sigmoid" in calls
    assert sum(c.startswith("depthwise_") for c in calls) == 8 and sum(c.startswith("conv2d_gemm") for c in calls) == 3
    assert _header_bytes(out, "ARENA_BYTES") == _header_bytes(out, "ARENA_LOWER_BOUND_BYTES")
    _agrees_with_the_interpreter(module, out, arch, Plan(module).random_inputs(3))


_RESIDUALS = """
graph G( x ) -> ( a, b, c, d, e, f, h, k )
{
    x = external<scalar>(shape = [1, 8, 8, 8]);
    s = relu(conv(x, variable<scalar>(shape = [8, 8, 3, 3], label = 'p'), 0.0, padding = [(1, 1), (1, 1)]));
    t = conv(s, variable<scalar>(shape = [8, 8, 3, 3], label = 'q'), variable<scalar>(shape = [1, 8], label = 'qb'),
             padding = [(1, 1), (1, 1)]);
    a = relu(add(t, x));
    u = conv(s, variable<scalar>(shape = [8, 8, 3, 3], label = 'r'), 0.0, padding = [(1, 1), (1, 1)]);
    b = add(u, s);
    c = sigmoid(u);
    v = conv(x, variable<scalar>(shape = [8, 8, 1, 1], label = 'v'), 0.0);
    d = relu(add(v, mean_reduce(x, axes = [2, 3])));
    z = conv(x, variable<scalar>(shape = [8, 8, 3, 3], label = 'z'), 0.0, padding = [(1, 1), (1, 1)]);
    e = clamp(add(s, z), 0.0, 0.5);
    f = add(conv(s, variable<scalar>(shape = [8, 8, 1, 1], label = 'g'), 0.0), s);
    h = add(conv(x, variable<scalar>(shape = [8, 8, 3, 3], label = 'h1'), 0.0, padding = [(1, 1), (1, 1)]),
            conv(s, variable<scalar>(shape = [8, 8, 1, 1], label = 'h2'), 0.0));
    k = relu(add(conv(x, variable<scalar>(shape = [8, 8, 1, 1], label = 'k'), 0.0), s));
}
"""


@pytest.mark.parametrize("arch", ARCHS)
def test_residual_adds_fuse_into_the_conv_that_makes_an_operand(tmp_path, arch):
    """A conv's residual add (and the activation after it) in the GEMM tile's epilogue
    (Winograd's: `test_winograd_convs_match_the_interpreter`): with a bias, then relu; then
    clamp with its bounds; without an activation into a graph output; the later of two
    convs taking the earlier one's result (a ResNet shortcut). Not fused: a conv whose
    result has another user, and an add that broadcasts its other operand."""
    shapes = (("p", (8, 8, 3, 3)), ("q", (8, 8, 3, 3)), ("qb", (1, 8)), ("r", (8, 8, 3, 3)), ("v", (8, 8, 1, 1)),
              ("z", (8, 8, 3, 3)), ("g", (8, 8, 1, 1)), ("h1", (8, 8, 3, 3)), ("h2", (8, 8, 1, 1)), ("k", (8, 8, 1, 1)))
    module, out = _emit_graph(tmp_path, _RESIDUALS, _normal_weights(np.random.default_rng(13), shapes, 0.3))
    text = (out / "model.c").read_text()
    comments = dict(re.findall(r"/\* %(\w+) = ([^[]+) \[", text))
    assert comments["a"] == comments["k"] == "conv + add + relu" and comments["e"] == "conv + add + clamp"
    assert comments["f"] == comments["h"] == "conv + add"
    assert comments["b"] == "add" and comments["u"] == "conv" and comments["d"] == "relu"  # not fused
    # a: into the caller's output, adding the caller's input x
    assert re.search(r"model_nn_conv2d_gemm_relu\([^;]*, outputs\[0\], inputs\[0\], A", text)
    assert re.search(r"model_nn_conv2d_gemm_relu\([^;]*, outputs\[7\], A \+ \d+, A", text)  # k's residual s
    assert _header_bytes(out, "ARENA_BYTES") == _header_bytes(out, "ARENA_LOWER_BOUND_BYTES")
    _agrees_with_the_interpreter(module, out, arch, Plan(module).random_inputs(4))


_WINOGRAD = """
graph G( x, r ) -> ( a, b, c, d )
{
    x = external<scalar>(shape = [2, 16, 11, 13]);
    r = external<scalar>(shape = [2, 13, 11, 13]);
    a = conv(x, variable<scalar>(shape = [13, 16, 3, 3], label = 'a'), variable<scalar>(shape = [1, 13], label = 'ab'),
             padding = [(1, 1), (1, 1)]);
    b = clamp(add(conv(x, variable<scalar>(shape = [13, 16, 3, 3], label = 'b'), 0.0, padding = [(1, 1), (1, 1)]), r),
              -0.5, 0.5);
    c = relu(conv(x, variable<scalar>(shape = [8, 16, 3, 3], label = 'c'), 0.0, padding = [(0, 0), (0, 0)]));
    y = external<scalar>(shape = [1, 16, 8, 40]);
    d = leaky_relu(conv(y, variable<scalar>(shape = [16, 16, 3, 3], label = 'd'), 0.0, padding = [(1, 1), (1, 1)]),
                   alpha = 0.1);
}
"""


@pytest.mark.parametrize("arch", ARCHS)
def test_winograd_convs_match_the_interpreter(tmp_path, arch):
    """3x3 convs at stride 1 with a border of one by Winograd's F(2x2, 3x3): odd planes
    (the last row and column of 2x2 blocks cut), two images, a last panel of one
    channel, groups of 16 blocks across rows and a last group short, with a bias, a
    residual and clamp, leaky relu on rows of 20 blocks (runs of 16 and 4); a conv
    without a border stays on the GEMM."""
    shapes = (("a", (13, 16, 3, 3)), ("ab", (1, 13)), ("b", (13, 16, 3, 3)), ("c", (8, 16, 3, 3)), ("d", (16, 16, 3, 3)))
    module, out = _emit_graph(tmp_path, _WINOGRAD.replace("graph G( x, r )", "graph G( x, r, y )"),
                              _normal_weights(np.random.default_rng(17), shapes, 0.3))
    calls = re.findall(r"^    model_nn_(\w+)\(", (out / "model.c").read_text(), re.M)
    assert calls == ["winograd_copy", "winograd_clamp", "conv2d_gemm_relu", "winograd_leaky_relu"]
    _agrees_with_the_interpreter(module, out, arch, Plan(module).random_inputs(8))


_REDUCTIONS = """
graph G( x ) -> ( inner, middle, apart, whole, big, small )
{
    x = external<scalar>(shape = [2, 3, 5, 7]);
    inner = mean_reduce(x, axes = [2, 3]);
    middle = sum_reduce(x, axes = [1, 2]);
    apart = max_reduce(x, axes = [1, 3]);
    whole = min_reduce(x, axes = [0, 1, 2, 3]);
    big = max_reduce(x, axes = [3]);
    small = min_reduce(x, axes = [0]);
}
"""


@pytest.mark.parametrize("arch", ARCHS)
def test_reductions_match_the_interpreter(tmp_path, arch):
    """Reductions over the last axes (their items carried in a register), over middle
    ones, over axes apart (neighbours merged only where both are reduced or both kept),
    over all and over the first."""
    module, out = _emit_graph(tmp_path, _REDUCTIONS, pipeline=None)
    text = (out / "model.c").read_text()
    assert "(const long[]){6, 35}, (const long[]){1, 0}, 2" in text  # [2, 3, 5, 7] over [2, 3] as [6, 35]
    _agrees_with_the_interpreter(module, out, arch, Plan(module).random_inputs(4))


_VECTOR_MAPS = """
graph G( x ) -> ( wide, narrow, gate, flat )
{
    x = external<scalar>(shape = [1, 3, 16, 20]);
    wide = tanh(conv(x, variable<scalar>(shape = [6, 3, 3, 3], label = 'a'), 0.0, padding = [(1, 1), (1, 1)]));
    narrow = tanh(conv(x, variable<scalar>(shape = [8, 3, 3, 3], label = 'b'), 0.0, padding = [(1, 1), (1, 1)]));
    gate = sigmoid(conv(x, variable<scalar>(shape = [6, 3, 3, 3], label = 'c'), 0.0, padding = [(1, 1), (1, 1)]));
    flat = sigmoid(conv(x, variable<scalar>(shape = [7, 3, 1, 1], label = 'd'), 0.0));
}
"""


@pytest.mark.parametrize("arch", ARCHS)
def test_tanh_and_sigmoid_epilogues_match_the_interpreter(tmp_path, arch):
    """The GEMM tile's tanh and sigmoid in registers (AVX2) or through libm (portable):
    pre-activations from about -60 to 60 (exp clamped, tanh and sigmoid saturated),
    mostly under 1/16 up to near it (tanh's series), and a NaN input item that stays
    NaN in its windows."""
    rng = np.random.default_rng(8)
    weights = {}
    for label, shape, scale in (("a", (6, 3, 3, 3), 8.0), ("b", (8, 3, 3, 3), 0.004), ("c", (6, 3, 3, 3), 8.0),
                                ("d", (7, 3, 1, 1), 1.0)):
        weights |= _normal_weights(rng, [(label, shape)], scale)
    module, out = _emit_graph(tmp_path, _VECTOR_MAPS, weights)
    text = (out / "model.c").read_text()
    assert "nn_conv2d_gemm_tanh(" in text and "nn_conv2d_gemm_sigmoid(" in text
    x = rng.standard_normal((1, 3, 16, 20)).astype(np.float32)
    x[0, 1, 5, 7] = np.nan
    expected, got = _agrees_with_the_interpreter(module, out, arch, {"x": x})
    narrow = np.abs(expected[1][~np.isnan(expected[1])])
    assert np.nanmax(np.abs(expected[0])) > 0.999 and np.mean(narrow < 1 / 16) > 0.9 and narrow.max() > 0.04
    for g, e in zip(got, expected):
        assert np.array_equal(np.isnan(g), np.isnan(e)) and np.isnan(e).any()
