"""Rewrite engines compared: a phase-ordering suite and the motifs TASO and TENSAT report on.

1. The phase-ordering suite: small graphs where the order of greedy rewrites decides the
   result (a rewrite that blocks a cheaper one, a constant on the wrong side, a transpose
   that cancels only after another rewrite moves it, max against leaky_relu, softmax and
   gelu spelled with their operands commuted...). What the default pipeline's
   canonicalizer already settles (3 * (2 * x), relu6 as min and max) is left out: each
   rewrite engine runs after it.
2. Motifs, generated as NNEF with random weights: a NasRNN cell, a BERT encoder layer,
   a ResNeXt block, an Inception module, a SqueezeNet fire module.

Per graph: cost (FLOPs, bytes moved: nnefopt.info.operation_cost summed) after the
default pipeline (`-O`), after `default,rewrite{engine=greedy}` and after
`default,rewrite{engine=eqsat}` ("n/a" where that engine is not there), each engine's
time, the e-graph's size, and the largest relative error of the outputs against the
original graph on random inputs. The rewrite runs as the pass does (its rules verified,
those that could fire on the module, then `run_engine`), so that the log is at hand.

    python bench/bench_rewrites.py [--rules standard] [--only suite|motifs] [--limit N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import nnefopt  # noqa: E402
from nnefopt.errors import NNEFError  # noqa: E402
from nnefopt.frontend.tensor_file import write_tensor  # noqa: E402
from nnefopt.info import operation_cost  # noqa: E402
from nnefopt.rules.engines import engine_products, run_engine  # noqa: E402
from nnefopt.rules.rule_sets import load_rule_set, rules_that_could_fire  # noqa: E402
from nnefopt.rules.verify import verified  # noqa: E402

ENGINES = ("greedy", "eqsat")


# ---- the phase-ordering suite --------------------------------------------------------------

X = "[2, 3, 4, 4]"


@dataclass(frozen=True)
class Case:
    name: str
    why: str  # what greedy gets wrong
    body: str  # graph body (NNEF), output y
    inputs: tuple = (("x", X),)


SUITE = [
    Case("mul_constants_interleaved", "((x * 2) * z) * 3: z stands between the two constants",
         "t = mul(x, 2.0); u = mul(t, z); y = mul(u, 3.0);", (("x", X), ("z", X))),
    Case("mul_chain_of_four", "(((x * 2) * z) * 3) * 4: greedy joins 3 and 4 only",
         "t = mul(x, 2.0); u = mul(t, z); v = mul(u, 3.0); y = mul(v, 4.0);", (("x", X), ("z", X))),
    Case("add_constants_interleaved", "((x + 1) + z) + 2: z stands between the two constants",
         "t = add(x, 1.0); u = add(t, z); y = add(u, 2.0);", (("x", X), ("z", X))),
    Case("div_then_mul", "(x / 4) * 2: a division is a product only after a cost-neutral rewrite",
         "y = mul(div(x, 4.0), 2.0);"),
    Case("div_interleaved", "((x / 2) * z) * 4: a division by a constant, then z between the constants",
         "t = div(x, 2.0); u = mul(t, z); y = mul(u, 4.0);", (("x", X), ("z", X))),
    Case("sub_interleaved", "((x - 1) + z) + 3: a subtracted constant, then z between the constants",
         "t = sub(x, 1.0); u = add(t, z); y = add(u, 3.0);", (("x", X), ("z", X))),
    Case("square_of_negation", "(-x) * (-x): x * x => sqr fires first and keeps the negation",
         "n = neg(x); y = mul(n, n);"),
    Case("gelu_constant_right", "x * sigmoid(x * 1.702): the gelu pattern has the constant left",
         "y = mul(x, sigmoid(mul(x, 1.702)));"),
    Case("gelu_commuted", "sigmoid(1.702 * x) * x: the outer product the other way round",
         "y = mul(sigmoid(mul(1.702, x)), x);"),
    Case("gelu_both_commuted", "sigmoid(x * 1.702) * x: both products the other way round",
         "y = mul(sigmoid(mul(x, 1.702)), x);"),
    Case("leaky_relu_constant_left", "max(x, 0.1 * x): leaky_relu wants x * 0.1",
         "y = max(x, mul(0.1, x));"),
    Case("leaky_relu_commuted", "max(x * 0.1, x): leaky_relu wants max(x, x * a)",
         "y = max(mul(x, 0.1), x);"),
    Case("leaky_relu_both_commuted", "max(0.1 * x, x): the max and the product the other way round",
         "y = max(mul(0.1, x), x);"),
    Case("softmax_by_reciprocal", "rcp(sum) * e: a division only once the product is commuted",
         "m = max_reduce(x, axes = [1]); e = exp(sub(x, m)); y = mul(rcp(sum_reduce(e, axes = [1])), e);"),
    Case("softmax_commuted", "exp(-max + x) / sum(...): x - max only after the sum is commuted",
         "m = max_reduce(x, axes = [1]); e = exp(add(neg(m), x)); y = div(e, sum_reduce(e, axes = [1]));"),
    Case("rsqrt_commuted", "1 / sqrt(eps + v): rsqrt's positive shift is on the wrong side",
         "v = mul(x, x); y = div(1.0, sqrt(add(0.00001, v)));"),
    Case("transposes_around_relu", "NHWC, relu, back to NCHW: the transposes meet only if relu moves",
         "t = transpose(x, axes = [0, 2, 3, 1]); y = transpose(relu(t), axes = [0, 3, 1, 2]);"),
    Case("transposes_around_sigmoid", "the same around a sigmoid",
         "t = transpose(x, axes = [0, 2, 3, 1]); y = transpose(sigmoid(t), axes = [0, 3, 1, 2]);"),
    Case("transposes_around_scale", "the same around a product by a constant",
         "t = transpose(x, axes = [0, 2, 3, 1]); y = transpose(mul(t, 2.0), axes = [0, 3, 1, 2]);"),
    Case("transposes_around_tanh", "the same around a tanh",
         "t = transpose(x, axes = [0, 3, 1, 2]); y = transpose(tanh(t), axes = [0, 2, 3, 1]);"),
    Case("transposes_around_two", "two operations to move: tanh(-t)",
         "t = transpose(x, axes = [0, 2, 3, 1]); y = transpose(tanh(neg(t)), axes = [0, 3, 1, 2]);"),
    Case("matrix_transposed_twice", "a matrix transposed around relu",
         "t = transpose(x, axes = [1, 0]); y = transpose(relu(t), axes = [1, 0]);", (("x", "[8, 16]"),)),
    Case("matrix_negated_between_transposes", "a matrix transposed around a negation",
         "t = transpose(x, axes = [1, 0]); y = transpose(neg(t), axes = [1, 0]);", (("x", "[8, 16]"),)),
]


def suite_text(case: Case) -> str:
    names = ", ".join(name for name, _ in case.inputs)
    externals = "".join(f"    {name} = external<scalar>(shape = {shape});\n" for name, shape in case.inputs)
    body = "".join(f"    {stmt.strip()};\n" for stmt in case.body.split(";") if stmt.strip())
    return f"version 1.0;\n\ngraph {case.name}( {names} ) -> ( y )\n{{\n{externals}{body}}}\n"


def write_suite_case(case: Case, folder: Path) -> Path:
    path = folder / case.name / "graph.nnef"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(suite_text(case))
    return path.parent


# ---- motifs: generated NNEF with random weights ---------------------------------------------


class ModelWriter:
    """One NNEF folder: statements, and variables written as .dat files."""

    def __init__(self, folder: Path, seed: int):
        self.folder, self.rng = folder, np.random.default_rng(seed)
        self.lines: list[str] = []
        self.inputs: list[tuple[str, list[int]]] = []
        self.count = 0

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def input(self, name: str, shape: list[int]) -> str:
        self.inputs.append((name, shape))
        self.lines.append(f"{name} = external<scalar>(shape = {shape});")
        return name

    def weight(self, shape: list[int], scale: float | None = None, offset: float = 0.0) -> str:
        name = self.fresh("w")
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        spread = scale if scale is not None else 1.0 / np.sqrt(max(fan_in, 1))
        data = (self.rng.standard_normal(shape) * spread + offset).astype(np.float32)
        write_tensor(self.folder / f"{name}.dat", data)
        self.lines.append(f"{name} = variable<scalar>(shape = {shape}, label = '{name}');")
        return name

    def op(self, text: str) -> str:
        name = self.fresh("t")
        self.lines.append(f"{name} = {text};")
        return name

    def finish(self, graph: str, outputs: list[str]) -> Path:
        names = ", ".join(n for n, _ in self.inputs)
        body = "".join(f"    {line}\n" for line in self.lines)
        text = f"version 1.0;\n\ngraph {graph}( {names} ) -> ( {', '.join(outputs)} )\n{{\n{body}}}\n"
        (self.folder / "graph.nnef").write_text(text)
        return self.folder


def nasrnn_cell(folder: Path, hidden: int = 256) -> Path:
    """TASO's NasRNN cell: eight matmuls of the input and eight of the state (two groups
    sharing an input), biases, sigmoid/tanh/relu gates combined by products and sums."""
    w = ModelWriter(folder, 1)
    x, h = w.input("x", [1, hidden]), w.input("h", [1, hidden])
    gates = []
    for i in range(8):
        a = w.op(f"matmul({x}, {w.weight([hidden, hidden])})")
        b = w.op(f"matmul({h}, {w.weight([hidden, hidden])})")
        gates.append(w.op(f"add(add({a}, {b}), {w.weight([1, hidden], 0.1)})"))
    acts = ["sigmoid", "tanh", "relu", "sigmoid", "sigmoid", "sigmoid", "tanh", "relu"]
    g = [w.op(f"{act}({gate})") for act, gate in zip(acts, gates)]
    l0, l1 = w.op(f"mul({g[0]}, {g[1]})"), w.op(f"add({g[2]}, {g[3]})")
    l2, l3 = w.op(f"mul({g[4]}, {g[5]})"), w.op(f"add({g[6]}, {g[7]})")
    m0, m1 = w.op(f"tanh(mul({l0}, {l1}))"), w.op(f"tanh(add({l2}, {l3}))")
    out = w.op(f"tanh(mul({m0}, {m1}))")
    return w.finish("nasrnn", [out])


def _layer_norm(w: ModelWriter, x: str, width: int) -> str:
    """Layer norm as exporters spell it: mean, centred square mean, 1 / sqrt, scale, shift."""
    mean = w.op(f"mean_reduce({x}, axes = [1])")
    centred = w.op(f"sub({x}, {mean})")
    variance = w.op(f"mean_reduce(mul({centred}, {centred}), axes = [1])")
    inverse = w.op(f"div(1.0, sqrt(add({variance}, 0.00001)))")
    scaled = w.op(f"mul(mul({centred}, {inverse}), {w.weight([1, width], 0.1, 1.0)})")
    return w.op(f"add({scaled}, {w.weight([1, width], 0.1)})")


def bert_layer(folder: Path, seq: int = 64, width: int = 256, heads: int = 4) -> Path:
    """A BERT encoder layer: Q/K/V matmuls sharing the input, scaled dot-product
    attention with softmax spelled out (max, exp, sum, divide), the output projection,
    residuals and layer norms, and a feed-forward block with the sigmoid gelu spelled out."""
    w = ModelWriter(folder, 2)
    x = w.input("x", [seq, width])
    dh = width // heads

    def projection(value: str, out: int) -> str:
        return w.op(f"add(matmul({value}, {w.weight([width, out])}), "
                    f"{w.weight([1, out], 0.02)})")

    def heads_of(value: str, axes: list[int]) -> str:
        return w.op(f"transpose(reshape({value}, shape = [{seq}, {heads}, {dh}]), axes = {axes})")

    q = heads_of(projection(x, width), [1, 0, 2])
    k = heads_of(projection(x, width), [1, 2, 0])
    v = heads_of(projection(x, width), [1, 0, 2])
    scores = w.op(f"mul(matmul({q}, {k}), {1 / np.sqrt(dh):.6f})")
    top = w.op(f"max_reduce({scores}, axes = [2])")
    e = w.op(f"exp(sub({scores}, {top}))")
    p = w.op(f"div({e}, sum_reduce({e}, axes = [2]))")
    context = w.op(f"reshape(transpose(matmul({p}, {v}), axes = [1, 0, 2]), shape = [{seq}, {width}])")
    attended = w.op(f"add(matmul({context}, {w.weight([width, width])}), {w.weight([1, width], 0.02)})")
    n1 = _layer_norm(w, w.op(f"add({x}, {attended})"), width)
    hidden = w.op(f"add(matmul({n1}, {w.weight([width, 4 * width])}), {w.weight([1, 4 * width], 0.02)})")
    gelu = w.op(f"mul({hidden}, sigmoid(mul(1.702, {hidden})))")
    ffn = w.op(f"add(matmul({gelu}, {w.weight([4 * width, width])}), {w.weight([1, width], 0.02)})")
    return w.finish("bert_layer", [_layer_norm(w, w.op(f"add({n1}, {ffn})"), width)])


def _conv(w: ModelWriter, x: str, cin: int, cout: int, k: int, groups: int = 1, relu: bool = True) -> str:
    filt = w.weight([cout, cin // groups, k, k])
    pad = k // 2
    conv = w.op(f"conv({x}, {filt}, {w.weight([1, cout], 0.05)}, padding = [({pad}, {pad}), ({pad}, {pad})], "
                f"groups = {groups})")
    return w.op(f"relu({conv})") if relu else conv


def resnext_block(folder: Path, channels: int = 128, size: int = 16, groups: int = 32) -> Path:
    """A ResNeXt bottleneck: 1x1, grouped 3x3 (cardinality 32), 1x1, and a projection
    shortcut reading the same input as the first 1x1."""
    w = ModelWriter(folder, 3)
    x = w.input("x", [1, channels, size, size])
    a = _conv(w, x, channels, channels, 1)
    b = _conv(w, a, channels, channels, 3, groups)
    c = _conv(w, b, channels, 2 * channels, 1, relu=False)
    shortcut = _conv(w, x, channels, 2 * channels, 1, relu=False)
    return w.finish("resnext", [w.op(f"relu(add({c}, {shortcut}))")])


def inception_module(folder: Path, channels: int = 192, size: int = 14) -> Path:
    """An Inception (GoogLeNet 3a) module: 1x1, 1x1-3x3, 1x1-5x5 and pool-1x1 branches on
    one input (three 1x1 convs share it), concatenated."""
    w = ModelWriter(folder, 4)
    x = w.input("x", [1, channels, size, size])
    b1 = _conv(w, x, channels, 64, 1)
    b2 = _conv(w, _conv(w, x, channels, 96, 1), 96, 128, 3)
    b3 = _conv(w, _conv(w, x, channels, 16, 1), 16, 32, 5)
    pooled = w.op(f"max_pool({x}, size = [1, 1, 3, 3], padding = [(0, 0), (0, 0), (1, 1), (1, 1)], border = 'ignore')")
    b4 = _conv(w, pooled, channels, 32, 1)
    return w.finish("inception", [w.op(f"concat([{b1}, {b2}, {b3}, {b4}], axis = 1)")])


def fire_module(folder: Path, channels: int = 128, size: int = 28) -> Path:
    """A SqueezeNet fire module: a 1x1 squeeze, then 1x1 and 3x3 expands of it, concatenated."""
    w = ModelWriter(folder, 5)
    x = w.input("x", [1, channels, size, size])
    s = _conv(w, x, channels, 16, 1)
    e1, e3 = _conv(w, s, 16, 64, 1), _conv(w, s, 16, 64, 3)
    return w.finish("fire", [w.op(f"concat([{e1}, {e3}], axis = 1)")])


MOTIFS = {"nasrnn": nasrnn_cell, "bert_layer": bert_layer, "resnext_block": resnext_block,
          "inception_module": inception_module, "fire_module": fire_module}


# ---- measuring -------------------------------------------------------------------------------


@dataclass
class Result:
    ops: int
    flops: float
    bytes: float
    seconds: float = 0.0
    nodes: str = ""  # the e-graph's size, where the engine reports one
    error: float = 0.0
    e_nodes: int = 0  # the e-graph's e-nodes (0: no e-graph)

    @property
    def total(self) -> float:
        return self.flops + self.bytes


def module_cost(module) -> tuple[int, float, float]:
    """(operations, FLOPs, bytes moved) of the graph (every operation of the op table)."""
    ops = [op for op in module.walk() if hasattr(op, "OP_DEF")]
    costs = [operation_cost(op) for op in ops]
    return len(ops), float(sum(c.flops for c in costs)), float(sum(c.bytes_read + c.bytes_written for c in costs))


def _eqsat_stats(log) -> str:
    """The e-graph's size from an engine's log: eqsat's FiringLog carries `stats` (e-nodes,
    iterations, why it stopped); other engines report none."""
    stats = getattr(log, "stats", None)
    if stats is None or not getattr(stats, "nodes", 0):
        return ""
    stopped = getattr(stats, "stopped", "")
    return f"{stats.nodes}/{getattr(stats, 'iterations', '?')}it" + ("" if stopped == "saturated" else f" ({stopped})")


def random_inputs(module, seed: int = 0) -> dict[str, np.ndarray]:
    from nnefopt.dialects.tensor_names import tensor_name
    from nnefopt.passes.rewriting import static_shape

    rng = np.random.default_rng(seed)
    inputs = {}
    for op in module.walk():
        if op.name == "nnef.external":
            inputs[tensor_name(op.results[0])] = rng.standard_normal(static_shape(op.results[0])).astype(np.float32)
    return inputs


def relative_error(reference: dict, got: dict) -> float:
    worst = 0.0
    for name, expected in reference.items():
        expected = np.asarray(expected, np.float64)
        actual = np.asarray(got[name], np.float64)
        if expected.shape != actual.shape:
            return float("inf")
        scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-30)
        worst = max(worst, float(np.max(np.abs(expected - actual), initial=0.0)) / scale)
    return worst


def rewritten(module, engine: str, rules_spec: str) -> tuple[object, Result] | None:
    """The module after `default,rewrite{rules=... engine=...}` (as the pass runs it), with
    its cost and the engine's time; None where the engine does not exist (yet)."""
    work = module.clone()
    nnefopt.optimize(work, "default")
    present = {o.name.removeprefix("nnef.") for o in work.walk()} | engine_products(engine)
    rules = verified(rules_that_could_fire(load_rule_set(rules_spec), present))
    start = time.perf_counter()
    try:
        log = run_engine(engine, work, rules)
    except NNEFError as error:
        if f"unknown rewrite engine '{engine}'" in error.message:
            return None
        raise
    seconds = time.perf_counter() - start
    work.verify()
    stats = getattr(log, "stats", None)
    return work, Result(*module_cost(work), seconds, _eqsat_stats(log), e_nodes=getattr(stats, "nodes", 0))


def measure(module, rules_spec: str, engines=ENGINES) -> dict[str, Result | None]:
    """Cost after the default pipeline, then after each engine, with numeric errors."""
    inputs = random_inputs(module)
    reference = nnefopt.run(module, inputs)
    default = module.clone()
    start = time.perf_counter()
    nnefopt.optimize(default, "default")
    results: dict[str, Result | None] = {
        "default": Result(*module_cost(default), time.perf_counter() - start,
                          error=relative_error(reference, nnefopt.run(default, inputs)))}
    for engine in engines:
        found = rewritten(module, engine, rules_spec)
        if found is not None:
            found[1].error = relative_error(reference, nnefopt.run(found[0], inputs))
        results[engine] = found[1] if found else None
    return results


# ---- printing --------------------------------------------------------------------------------


def _number(value: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.0f}"


HEADER = (f"{'graph':<27} {'default ops/FLOPs/bytes':>24} | {'greedy ops/FLOPs/bytes':>24} {'time':>7} | "
          f"{'eqsat ops/FLOPs/bytes':>24} {'time':>7} {'e-nodes':>10} | {'err greedy':>10} {'err eqsat':>10}")


def row(name: str, results: dict[str, Result | None]) -> str:
    def cost(r: Result | None) -> str:
        return f"{r.ops}/{_number(r.flops)}/{_number(r.bytes)}" if r else "n/a"

    d, g, e = results["default"], results.get("greedy"), results.get("eqsat")
    return (f"{name:<27} {cost(d):>24} | {cost(g):>24} {(f'{g.seconds:.2f}s' if g else 'n/a'):>7} | "
            f"{cost(e):>24} {(f'{e.seconds:.2f}s' if e else 'n/a'):>7} {(e.nodes if e else 'n/a') or '-':>10} | "
            f"{(f'{g.error:.1e}' if g else 'n/a'):>10} {(f'{e.error:.1e}' if e else 'n/a'):>10}")


def run_suite(folder: Path, rules_spec: str, cases=SUITE, engines=ENGINES) -> list[tuple[str, dict]]:
    measured = []
    for case in cases:
        module = nnefopt.load(write_suite_case(case, folder) / "graph.nnef")
        measured.append((case.name, measure(module, rules_spec, engines)))
    return measured


def run_motifs(folder: Path, rules_spec: str, names=tuple(MOTIFS), engines=ENGINES) -> list[tuple[str, dict]]:
    measured = []
    for name in names:
        target = folder / name
        target.mkdir(parents=True, exist_ok=True)
        module = nnefopt.load(MOTIFS[name](target))
        measured.append((name, measure(module, rules_spec, engines)))
    return measured


def suite_summary(measured: list[tuple[str, dict]]) -> str:
    pairs = [(r["greedy"], r["eqsat"]) for _, r in measured if r.get("greedy") and r.get("eqsat")]
    if not pairs:
        return f"suite: {len(measured)} graphs; eqsat n/a"
    below = sum(e.total < g.total for g, e in pairs)
    above = sum(e.total > g.total for g, e in pairs)
    return (f"suite: {len(measured)} graphs; eqsat below greedy on {below}, above on {above} (must be 0), "
            f"equal on {len(pairs) - below - above}")


def cut_by_a_tenth(default: Result, rewritten: Result) -> bool:
    """The issue's bar for a motif: FLOPs or bytes 10% or more below the default pipeline's."""
    return rewritten.flops <= 0.9 * default.flops or rewritten.bytes <= 0.9 * default.bytes


def motif_summary(measured: list[tuple[str, dict]]) -> str:
    parts = []
    for engine in ENGINES:
        cut = [name for name, r in measured if r.get(engine) and cut_by_a_tenth(r["default"], r[engine])]
        available = any(r.get(engine) for _, r in measured)
        parts.append(f"{engine} cuts FLOPs or bytes by >= 10% vs default on "
                     + (f"{len(cut)} of {len(measured)}" + (f" ({', '.join(cut)})" if cut else "")
                        if available else "n/a"))
    return "motifs: " + "; ".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", default="standard", help="rule set (as rewrite{rules=...})")
    parser.add_argument("--only", choices=("suite", "motifs"))
    parser.add_argument("--limit", type=int, default=0, help="only the first N suite graphs")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_rewrites_") as tmp:
        folder = Path(tmp)
        print(HEADER)
        if args.only != "motifs":
            measured = run_suite(folder / "suite", args.rules, SUITE[:args.limit] if args.limit else SUITE)
            for name, results in measured:
                print(row(name, results), flush=True)
            print(suite_summary(measured))
        if args.only != "suite":
            measured = run_motifs(folder / "motifs", args.rules)
            for name, results in measured:
                print(row(name, results), flush=True)
            print(motif_summary(measured))


if __name__ == "__main__":
    main()
