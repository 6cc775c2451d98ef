"""Shape rules against the Khronos package on one-operation graphs (random and hand-picked
arguments, valid and not), symbolic dims, and the shipped standard library against the
Khronos parser's own: same signatures, same bodies once lowered."""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

import nnef
import pytest
import sympy

from nnefopt.errors import NNEFError
from nnefopt.frontend import ast
from nnefopt.frontend.builder import GraphBuilder
from nnefopt.frontend.parser import parse_document
from nnefopt.frontend.shape_inference import infer_shapes
from nnefopt.frontend.stdlib import STANDARD, standard_operations
from nnefopt.shapes import SHAPE_RULES

N = sympy.Symbol("N", integer=True, positive=True)


# ---- one-operation graphs, read by both sides ------------------------------------------


def graph_text(inputs: dict[str, list], statement: str) -> str:
    """`inputs` maps names to shapes; a name starting with `i_` is an integer tensor, with
    `b_` a logical one. Every name the statement assigns is an output."""
    types = {"i_": "integer", "b_": "logical"}
    lines = [f"{name} = external<{types.get(name[:2], 'scalar')}>(shape = {shape});" for name, shape in inputs.items()]
    outputs = re.findall(r"\w+", statement.split("=")[0])
    body = "\n".join(f"    {line}" for line in [*lines, statement])
    return f"version 1.0;\ngraph G( {', '.join(inputs)} ) -> ( {', '.join(outputs)} )\n{{\n{body}\n}}\n"


def our_shapes(text: str, strict: bool = False) -> dict:
    model = GraphBuilder(parse_document(text, "g.nnef"), load_tensor=None, strict=strict).build()
    infer_shapes(model, strict)
    return {name: list(t.shape) for name, t in model.tensors.items()}


def _operand(value, inputs: dict):
    """An argument of a Khronos operation as our rules take it: a shape, a list of them,
    or () for a literal."""
    if isinstance(value, list):
        return [_operand(v, inputs) for v in value]
    return tuple(inputs[value]) if isinstance(value, nnef.Identifier) else ()


def _listed(result, count: int) -> list:
    results = [result] if count == 1 else list(result)
    return [[list(s) for s in r] if isinstance(r, list) else list(r) for r in results]


# The reference computes a window larger than its padded input as an extent <= 0; we refuse.
_WINDOW_OPS = {"conv", "deconv", "separable_conv", "separable_deconv", "box", "debox", "max_pool", "avg_pool",
               "rms_pool", "argmax_pool", "max_pool_with_index", "sample", "desample"}


def _khronos_results(graph, op) -> list | None:
    """Result shapes as the reference infers them, None when it refuses."""
    try:
        nnef.infer_shapes(graph)
    except Exception:  # its rules assert, and some index or divide by zero first
        return None
    if op.name in _WINDOW_OPS and any(d <= 0 for v in op.outputs.values() for d in graph.tensors[v].shape):
        return None
    return [[list(graph.tensors[n].shape) for n in v] if isinstance(v, list) else list(graph.tensors[v].shape)
            for v in op.outputs.values()]


def check(inputs: dict, statement: str) -> None:
    """Our rule, called directly with the arguments the Khronos parser bound, and our whole
    front end (strict: no repairs of exporters' mistakes), agree with nnef.infer_shapes:
    the same shapes, or both refuse."""
    text = graph_text(inputs, statement)
    graph = nnef.parse_string(text)
    op = graph.operations[-1]
    expected = _khronos_results(graph, op)
    rule = SHAPE_RULES[op.name]
    operands = [_operand(v, inputs) for v in op.inputs.values()]
    if expected is None:
        try:
            rule(*operands, **op.attribs)
        except ValueError:
            pass
        else:
            pytest.fail(f"rule accepts what Khronos refuses: {statement} with {inputs}")
        with pytest.raises(NNEFError):
            our_shapes(text, strict=True)
        return
    assert _listed(rule(*operands, **op.attribs), len(op.outputs)) == expected, (statement, inputs)
    ours = our_shapes(text, strict=True)
    for value, shape in zip(op.outputs.values(), expected):
        assert ([ours[v] for v in value] if isinstance(value, list) else ours[value]) == shape, (statement, inputs)


# ---- random cases per family -----------------------------------------------------------


def dims(rng, rank: int, high: int = 6) -> list:
    return [rng.randint(1, high) for _ in range(rank)]


def maybe(rng, p: float = 0.5) -> bool:
    return rng.random() < p


def spoil(rng, shape: list, p: float = 0.15) -> list:
    """Now and then, one extent off by one: an invalid case among the valid ones."""
    shape = list(shape)
    if shape and maybe(rng, p):
        shape[rng.randrange(len(shape))] += 1
    return shape


def window_args(rng, n: int) -> list[str]:
    args = []
    if maybe(rng):
        args.append(f"padding = {[(rng.randint(0, 2), rng.randint(0, 2)) for _ in range(n)]}")
    if maybe(rng):
        args.append(f"stride = {dims(rng, n, 3)}")
    if maybe(rng, 0.3):
        args.append(f"dilation = {dims(rng, n, 2)}")
    if maybe(rng, 0.05):
        args = [a for a in args if not a.startswith("stride")] + [f"stride = {dims(rng, n + 1, 2)}"]  # wrong length
    return args


def call(op: str, operands: list[str], args: list[str]) -> str:
    return f"{op}({', '.join([*operands, *args])})"


def array_lhs(count: int) -> str:
    return f"[{', '.join(f'z{i}' for i in range(count))}]"


def with_output_shape(rng, inputs: dict, op: str, args: list[str]) -> str:
    """The call, now and then with an output_shape a little above the one the reference
    computes without it: several extents map back onto the input when the stride is > 1."""
    statement = f"z = {call(op, list(inputs), args)};"
    graph = nnef.parse_string(graph_text(inputs, statement))
    computed = _khronos_results(graph, graph.operations[-1])
    if computed is None or maybe(rng, 0.4):
        return statement
    output = [*computed[0][:2], *(d + rng.choice([0, 0, 1, 2]) for d in computed[0][2:])]
    return f"z = {call(op, list(inputs), [*args, f'output_shape = {spoil(rng, output, 0.1)}'])};"


def gen_elementwise(rng):
    rank = rng.randint(0, 4)
    full = dims(rng, rank)

    def operand():  # left-aligned: a prefix of the full shape, with some 1s
        return spoil(rng, [rng.choice([d, d, 1]) for d in full][:rng.randint(0, rank)], 0.1)

    op = rng.choice(["add", "sub", "mul", "div", "pow", "min", "max", "lt", "ge", "eq", "and", "or", "select", "clamp"])
    if op == "select":
        return {"b_c": operand(), "x": operand(), "y": operand()}, f"z = {op}(b_c, x, y);"
    if op == "clamp":
        return {"x": operand(), "a": operand(), "b": operand()}, f"z = {op}(x, a, b);"
    names = ["b_x", "b_y"] if op in ("and", "or") else ["x", "y"]
    return dict(zip(names, [operand(), operand()])), f"z = {call(op, names, [])};"


def gen_broadcast_to(rng):
    """Operations whose parameters broadcast to the main input, which keeps its shape."""
    x = dims(rng, rng.randint(1, 4), 5)

    def param():
        return spoil(rng, [rng.choice([d, 1]) for d in x][:rng.randint(0, len(x))])

    bits = rng.choice([8, 8, 1, 0])
    choices = [
        ({"x": x, "a": param()}, "z = prelu(x, a);"),
        ({"x": x, "lo": param(), "hi": param()}, f"z = linear_quantize(x, lo, hi, bits = {bits});"),
        ({"x": x, "lo": param(), "hi": param()},
         f"z = min_max_linear_quantize(x, lo, hi, bits = {bits}, signed = true, symmetric = false);"),
        ({"x": x, "i_z": param(), "s": param()},
         f"z = zero_point_linear_quantize(x, i_z, s, bits = {bits}, signed = false, symmetric = true);"),
        ({"x": x, "hi": param()}, f"z = logarithmic_quantize(x, hi, bits = {bits});"),
        ({"x": x, "m": param(), "v": param(), "o": param(), "s": param()},
         "z = batch_normalization(x, m, v, o, s, epsilon = 1e-3);"),
    ]
    return rng.choice(choices)


def _bias(rng, channels: int) -> dict:
    shape = rng.choice([None, None, [1, channels], [channels], [1, channels + 1], [2, channels]])
    return {} if shape is None else {"b": shape}


def gen_conv(rng):
    spatial = rng.randint(1, 3)
    groups = rng.choice([1, 1, 2, 3, 0])
    if groups == 0:  # depth-wise: one group per input channel
        c_in = rng.randint(1, 4)
        filter_in, c_out = 1, c_in * rng.randint(1, 2)
    else:
        filter_in = rng.randint(1, 3)
        c_in, c_out = groups * filter_in, groups * rng.randint(1, 3)
    x = [rng.randint(1, 3), c_in, *dims(rng, spatial, 12)]
    w = spoil(rng, [c_out, filter_in, *dims(rng, spatial, 4)], 0.1)
    inputs = {"x": x, "w": w, **_bias(rng, c_out)}
    args = window_args(rng, spatial) + ([f"groups = {groups}"] if groups != 1 else [])
    return inputs, f"z = {call('conv', list(inputs), args)};"


def gen_deconv(rng):
    spatial = rng.randint(1, 3)
    groups = rng.choice([1, 1, 2, 0])
    c_in = (groups or 1) * rng.randint(1, 3)
    per_group = 1 if groups == 0 else rng.randint(1, 3)
    x = [rng.randint(1, 3), c_in, *dims(rng, spatial, 8)]
    w = spoil(rng, [c_in, per_group, *dims(rng, spatial, 4)], 0.1)
    channels = per_group * (groups or c_in)
    inputs = {"x": x, "w": w, **_bias(rng, channels)}
    args = window_args(rng, spatial) + ([f"groups = {groups}"] if groups != 1 else [])
    return inputs, with_output_shape(rng, inputs, "deconv", args)


def gen_separable(rng):
    """groups = 1 only: there the reference and the specification's body agree."""
    spatial = rng.randint(1, 2)
    c_in, multiplier, c_out = rng.randint(1, 3), rng.randint(1, 2), rng.randint(1, 4)
    x = [1, c_in, *dims(rng, spatial, 9)]
    kernel = dims(rng, spatial, 3)
    args = window_args(rng, spatial)
    if maybe(rng):
        plane, point = [c_in * multiplier, 1, *kernel], [c_out, c_in * multiplier, *[1] * spatial]
        return {"x": x, "p": plane, "q": spoil(rng, point)}, f"z = {call('separable_conv', ['x', 'p', 'q'], args)};"
    plane, point = [c_out, 1, *kernel], [c_in, c_out, *[1] * spatial]
    return {"x": x, "p": spoil(rng, plane), "q": point}, f"z = {call('separable_deconv', ['x', 'p', 'q'], args)};"


def gen_pool(rng):
    rank = rng.randint(2, 4)
    x = dims(rng, rank, 10)
    size = [1, 1, *dims(rng, rank - 2, 3)] if maybe(rng, 0.8) else dims(rng, rank, 2)
    op = rng.choice(["box", "max_pool", "avg_pool", "rms_pool", "argmax_pool", "debox", "max_pool_with_index",
                     "sample", "desample"])
    args = [f"size = {spoil(rng, size, 0.05)}", *window_args(rng, rank)]
    if op in ("avg_pool", "box") and maybe(rng):
        args.append("border = 'ignore'")
    inputs = {"x": x, "i_x": spoil(rng, x, 0.1)} if op in ("sample", "desample") else {"x": x}
    if op in ("debox", "desample"):
        return inputs, with_output_shape(rng, inputs, op, args)
    lhs = "z, w" if op == "max_pool_with_index" else "z"
    return inputs, f"{lhs} = {call(op, list(inputs), args)};"


def gen_resize(rng):
    rank = rng.randint(3, 4)
    factor = dims(rng, rank - 2, 3)
    x = [rng.randint(1, 2), rng.randint(1, 4), *(f * rng.randint(1, 4) + (maybe(rng, 0.1) and 1) for f in factor)]
    op = rng.choice(["nearest_downsample", "area_downsample", "nearest_upsample", "multilinear_upsample"])
    args = [f"factor = {factor if maybe(rng, 0.9) else factor + [2]}"]
    if op == "multilinear_upsample":
        args += [f"method = '{rng.choice(['symmetric', 'asymmetric', 'aligned'])}'", "border = 'constant'"]
    return {"x": x}, f"z = {call(op, ['x'], args)};"


def gen_reduce(rng):
    rank = rng.randint(1, 4)
    x = dims(rng, rank)
    axes = sorted(rng.sample(range(rank), rng.randint(0, rank))) + ([rank] if maybe(rng, 0.05) else [])
    op = rng.choice(["sum_reduce", "mean_reduce", "max_reduce", "min_reduce", "argmax_reduce", "argmin_reduce",
                     "any_reduce", "all_reduce", "moments", "softmax", "l1_normalization", "l2_normalization"])
    name = "b_x" if op in ("any_reduce", "all_reduce") else "x"
    args = [f"axes = {axes}"] + (["normalize = true"] if op == "sum_reduce" and maybe(rng) else [])
    return {name: x}, f"{'z, w' if op == 'moments' else 'z'} = {call(op, [name], args)};"


def gen_local_normalization(rng):
    x = dims(rng, rng.randint(2, 4))
    size = [rng.randint(1, 3) for _ in range(len(x) + (maybe(rng, 0.1) and 1))]
    op = rng.choice(["local_response_normalization", "local_mean_normalization", "local_variance_normalization",
                     "local_contrast_normalization"])
    return {"x": x}, f"z = {op}(x, size = {size});"


def _factors(rng, n: int) -> list:
    """A random factorization of n (1s included now and then)."""
    out = []
    while n > 1 and len(out) < 3:
        f = rng.choice([d for d in range(1, n + 1) if n % d == 0])
        out.append(f)
        n //= f
    return out + [n] if n > 1 or not out else out


def gen_reshape(rng):
    rank = rng.randint(1, 4)
    x = dims(rng, rank, 4)
    start = rng.randint(0, rank)
    count = rng.randint(0, rank - start)
    shape = spoil(rng, _factors(rng, math.prod(x[start:start + count])), 0.1)
    shape = [0 if i + start < rank and s == x[i + start] and maybe(rng, 0.3) else s for i, s in enumerate(shape)]
    if shape and maybe(rng):
        shape[rng.randrange(len(shape))] = -1
    args = [f"shape = {shape}"]
    if start or maybe(rng, 0.2):
        args.append(f"axis_start = {start}")
    if start + count != rank or maybe(rng, 0.2):
        args.append(f"axis_count = {count if start + count != rank or maybe(rng) else -1}")
    return {"x": x}, f"z = {call('reshape', ['x'], args)};"


def gen_axes_ops(rng):
    rank = rng.randint(1, 4)
    x = [rng.choice([1, rng.randint(2, 5)]) for _ in range(rank)]
    op = rng.choice(["squeeze", "unsqueeze", "transpose"])
    if op == "squeeze":  # the Python reference does not check that squeezed extents are 1
        axes = [a for a in range(rank) if x[a] == 1 and maybe(rng)]
    elif op == "unsqueeze":  # sorted: the two references read unsorted axes differently
        axes = sorted(rng.sample(range(rank + 2), rng.randint(0, 2)))
    else:
        axes = rng.sample(range(rank), rng.randint(1, rank)) if maybe(rng, 0.9) else [0, 0]
    return {"x": x}, f"z = {op}(x, axes = {axes});"


def gen_split_concat_stack(rng):
    rank = rng.randint(1, 3)
    x = dims(rng, rank, 4)
    axis = rng.randrange(rank + (maybe(rng, 0.05) and 1))
    op = rng.choice(["split", "concat", "stack", "unstack"])
    if op == "split":
        ratios = dims(rng, rng.randint(1, 3), 3)
        if axis < rank:
            x[axis] = sum(ratios) * rng.randint(1, 2) + (maybe(rng, 0.1) and 1)
        return {"x": x}, f"{array_lhs(len(ratios))} = split(x, axis = {axis}, ratios = {ratios});"
    if op == "unstack":
        return {"x": x}, f"{array_lhs(x[axis] if axis < rank else 1)} = unstack(x, axis = {axis});"
    parts = {f"x{i}": spoil(rng, x, 0.1) for i in range(rng.randint(1, 3))}
    if op == "concat":
        for shape in parts.values():
            if axis < rank:
                shape[axis] = rng.randint(1, 4)
    return parts, f"z = {op}([{', '.join(parts)}], axis = {axis});"


def gen_slice(rng):
    rank = rng.randint(1, 3)
    x = dims(rng, rank, 8)
    axes = sorted(rng.sample(range(rank), rng.randint(1, rank)))
    begin = [rng.randint(-x[a] - 2, x[a] + 1) for a in axes]
    end = [rng.choice([0, rng.randint(-x[a] - 2, x[a] + 2)]) for a in axes]
    args = [f"axes = {axes}", f"begin = {begin}", f"end = {end}"]
    kind = rng.choice(["none", "ones", "mixed"])
    if kind == "ones":  # the same as none: an end of 0 then means the extent
        args.append(f"stride = {[1] * len(axes)}")
    elif kind == "mixed":
        args.append(f"stride = {[rng.choice([-3, -2, -1, 1, 2, 3]) for _ in axes]}")
    return {"x": x}, f"z = {call('slice', ['x'], args)};"


def gen_pad_tile_gather(rng):
    rank = rng.randint(1, 3)
    x = dims(rng, rank, 4)
    op = rng.choice(["pad", "tile", "gather"])
    if op == "pad":
        padding = [(rng.randint(0, 2), rng.randint(0, 2)) for _ in range(rank + (maybe(rng, 0.1) and 1))]
        return {"x": x}, f"z = pad(x, padding = {padding}, border = 'reflect');"
    if op == "tile":
        return {"x": x}, f"z = tile(x, repeats = {dims(rng, rank + (maybe(rng, 0.1) and 1), 3)});"
    axis = rng.randrange(rank + (maybe(rng, 0.05) and 1))
    return {"x": x, "i_x": dims(rng, rng.randint(0, 2), 3)}, f"z = gather(x, i_x, axis = {axis});"


def gen_matmul(rng):
    if maybe(rng, 0.3):  # linear: the reference takes rank 2 only
        b, c, o = dims(rng, 3)
        inputs = {"x": [b, c], "w": spoil(rng, [o, c], 0.1), **_bias(rng, o)}
        return inputs, f"z = linear({', '.join(inputs)});"
    rank = rng.randint(2, 4)
    batch = dims(rng, rank - 2, 3)
    m, k, n = dims(rng, 3)
    a_t, b_t = maybe(rng), maybe(rng)
    a = [rng.choice([d, 1]) for d in batch] + ([k, m] if a_t else [m, k])
    b = [rng.choice([d, 1]) for d in batch] + ([n, k] if b_t else [k, n])
    args = [f"transposeA = {str(a_t).lower()}", f"transposeB = {str(b_t).lower()}"]
    return {"a": spoil(rng, a, 0.1), "b": b}, f"z = {call('matmul', ['a', 'b'], args)};"


def gen_roi(rng):
    spatial = rng.randint(1, 2)
    regions = rng.randint(1, 4)
    inputs = {"x": [2, 3, *dims(rng, spatial, 9)], "r": spoil(rng, [regions, 4], 0.1), "i_b": [regions]}
    op = rng.choice(["avg_roi_pool", "max_roi_pool", "roi_resample", "avg_roi_align", "max_roi_align"])
    args = [f"output_size = {dims(rng, spatial + (maybe(rng, 0.05) and 1), 4)}"]
    if op.endswith("align"):
        args.append(f"sampling_rate = {dims(rng, spatial, 2)}")
    return inputs, f"z = {call(op, ['x', 'r', 'i_b'], args)};"


def gen_misc(rng):
    x = dims(rng, rng.randint(0, 3), 4)
    if maybe(rng):
        times = rng.randint(1, 3)
        return {"x": x}, f"{array_lhs(times)} = copy_n(x, times = {times});"
    terms = {f"x{i}": spoil(rng, x, 0.1) for i in range(rng.randint(1, 3))}
    return terms, f"z = add_n([{', '.join(terms)}]);"


GENERATORS = [gen_elementwise, gen_broadcast_to, gen_conv, gen_deconv, gen_separable, gen_pool, gen_resize,
              gen_reduce, gen_local_normalization, gen_reshape, gen_axes_ops, gen_split_concat_stack, gen_slice,
              gen_pad_tile_gather, gen_matmul, gen_roi, gen_misc]


@pytest.mark.parametrize("generate", GENERATORS, ids=lambda g: g.__name__[4:])
def test_random_cases_match_khronos(generate):
    rng = random.Random(generate.__name__)
    for _ in range(100):
        check(*generate(rng))


# ---- hand-picked cases -------------------------------------------------------------------


HAND_CASES = [
    ({"x": [2, 3, 4, 5], "y": [1, 3]}, "z = mul(x, y);"),  # aligned from the left
    ({"x": [2, 3, 4, 5], "y": [3]}, "z = mul(x, y);"),  # ... so [3] meets the batch
    ({"x": [4], "y": []}, "z = sub(x, y);"),
    ({"x": [1, 3, 32, 32], "w": [8, 3, 3, 3]}, "z = conv(x, w);"),  # automatic padding
    ({"x": [1, 3, 31, 33], "w": [8, 3, 3, 5]}, "z = conv(x, w, stride = [2, 3]);"),
    ({"x": [2, 8, 9, 9], "w": [16, 4, 3, 3], "b": [1, 16]}, "z = conv(x, w, b, groups = 2);"),
    ({"x": [1, 4, 7, 7], "w": [4, 2, 3, 3]},
     "z = deconv(x, w, padding = [(1, 1), (1, 1)], stride = [2, 2], output_shape = [1, 2, 14, 14]);"),
    ({"x": [1, 4, 7, 7], "w": [4, 2, 3, 3]},
     "z = deconv(x, w, padding = [(1, 1), (1, 1)], stride = [2, 2], output_shape = [1, 2, 13, 14]);"),
    ({"x": [1, 4, 7, 7], "w": [4, 1, 3, 3]}, "z = deconv(x, w, groups = 0, output_shape = [1, 4, 7, 7]);"),
    ({"x": [1, 3, 5, 5]}, "z = debox(x, size = [1, 1, 2, 2], stride = [1, 1, 2, 2], output_shape = [1, 3, 9, 10]);"),
    ({"x": [1, 3, 4, 4], "w": [8, 3, 5, 5]}, "z = conv(x, w, padding = [(0, 0), (0, 0)]);"),  # window too large
    ({"x": [2, 3, 4, 5]}, "z = reshape(x, shape = [0, -1]);"),
    ({"x": [2, 3, 4, 5]}, "z = reshape(x, shape = [-1], axis_start = 1, axis_count = 2);"),
    ({"x": [2, 3, 4, 5]}, "z = reshape(x, shape = [0, 0, 0, 0, 1]);"),  # a 0 past the input's rank
    ({"x": [10, 20, 30]}, "z = slice(x, axes = [0, 2], begin = [2, -10], end = [8, 0]);"),
    ({"x": [10, 20, 30]}, "z = slice(x, axes = [0, 1], begin = [-1, 15], end = [-11, 2], stride = [-1, -4]);"),
    ({"x": [10, 20]}, "z = slice(x, axes = [0, 1], begin = [0, 0], end = [0, 0], stride = [1, 2]);"),  # mixed
    ({"x": [10]}, "z = slice(x, axes = [0], begin = [-12], end = [5]);"),  # begin before the axis
    ({"x": [2, 6]}, "[a, b, c] = split(x, axis = 1, ratios = [1, 2, 3]);"),
    ({"x": [2, 5]}, "[a, b] = split(x, axis = 1, ratios = [1, 1]);"),
    ({"x": [3, 2]}, "[a, b, c] = unstack(x, axis = 0);"),
    ({"x": [5, 6, 7], "i_x": [2, 3]}, "z = gather(x, i_x, axis = 1);"),
    ({"a": [4, 1, 2, 3], "b": [1, 6, 5, 3]}, "z = matmul(a, b, transposeB = true);"),
    ({"x": [2, 16, 5, 5], "m": [1, 16]}, "z = batch_normalization(x, m, m, m, m, epsilon = 1e-3);"),
    ({"x": [2, 16, 5, 5], "m": [16]}, "z = batch_normalization(x, m, m, m, m, epsilon = 1e-3);"),
    ({"x": [1, 4, 5, 5], "p": [8, 1, 3, 3], "q": [6, 8, 1, 1]}, "z = separable_conv(x, p, q, stride = [2, 2]);"),
]


@pytest.mark.parametrize("inputs,statement", HAND_CASES)
def test_hand_cases_match_khronos(inputs, statement):
    check(inputs, statement)


# Where a rule knowingly differs from the Khronos reference (see the rules' docstrings).
@pytest.mark.parametrize("name,operands,attributes,expected", [
    # The specification's body composes with groups; the reference takes groups = 1 only.
    ("separable_conv", [(1, 4, 5, 5), (4, 1, 3, 3), (6, 2, 1, 1)],
     dict(bias=(), border="constant", padding=[], stride=[], dilation=[], groups=2), (1, 6, 5, 5)),
    # torch-to-nnef's batched linear: [B, T, C] x [1, O, C] + [1, 1, O].
    ("linear", [(2, 7, 16), (1, 10, 16), (1, 1, 10)], {}, (2, 7, 10)),
    # Unsorted axes are output positions, as in the C++ reference.
    ("unsqueeze", [(5, 6)], dict(axes=[2, 0]), (1, 5, 1, 6)),
])
def test_rules_where_the_reference_differs(name, operands, attributes, expected):
    assert SHAPE_RULES[name](*operands, **attributes) == expected


@pytest.mark.parametrize("name,operands,attributes", [
    ("squeeze", [(2, 3)], dict(axes=[1])),  # the C++ reference refuses a non-singleton axis too
    ("add_n", [[(2, 3), (1, 3)]], {}),  # identical shapes, not broadcast ones
    ("unsqueeze", [(2,)], dict(axes=[0, 0])),
])
def test_rules_refuse(name, operands, attributes):
    with pytest.raises(ValueError):
        SHAPE_RULES[name](*operands, **attributes)


@pytest.mark.parametrize(
    "inputs,statement,words",
    [
        ({"x": [2, 3], "y": [3, 2]}, "z = add(x, y);", "do not broadcast"),
        ({"x": [1, 3, 8, 8], "w": [4, 2, 3, 3]}, "z = conv(x, w);", "differ from input channels"),
        ({"x": [2, 3]}, "z = reshape(x, shape = [4, -1]);", "does not divide"),
        ({"x": [2, 3]}, "z = transpose(x, axes = [0, 0]);", "not a permutation"),
        ({"a": [2, 3], "b": [4, 5]}, "z = matmul(a, b);", "inner dimensions differ"),
        ({"x": [2, 5]}, "[z, b] = split(x, axis = 1, ratios = [1, 1]);", "do not divide"),
    ],
)
def test_bad_shapes_are_errors_at_the_operation(inputs, statement, words):
    with pytest.raises(NNEFError, match=words) as info:
        our_shapes(graph_text(inputs, statement))
    assert str(info.value).startswith(f"g.nnef:{4 + len(inputs)}:")


# ---- symbolic dims ---------------------------------------------------------------------------


WINDOW = dict(border="constant", padding=[], stride=[], dilation=[])


@pytest.mark.parametrize("name,operands,attributes,expected", [
    ("conv", [(N, 3, 32, 32), (8, 3, 3, 3), ()], {**WINDOW, "stride": [2, 2], "groups": 1}, (N, 8, 16, 16)),
    ("conv", [(1, 3, N), (8, 3, 3), ()], {**WINDOW, "stride": [2], "groups": 1}, (1, 8, sympy.ceiling(N / 2))),
    ("conv", [(1, 3, N), (8, 3, 3), ()], {**WINDOW, "padding": [(0, 0)], "groups": 1}, (1, 8, N - 2)),
    ("reshape", [(N, 8, 4, 4)], dict(shape=[0, -1], axis_start=0, axis_count=-1), (N, 128)),
    ("reshape", [(2 * N, 8, 4)], dict(shape=[-1], axis_start=0, axis_count=-1), (64 * N,)),
    ("reshape", [(N, 12)], dict(shape=[-1, 3, 4], axis_start=0, axis_count=-1), (N, 3, 4)),
    ("matmul", [(N, 5, 7), (1, 7, 2)], dict(transposeA=False, transposeB=False), (N, 5, 2)),
    ("add", [(N, 3), (1, 3)], {}, (N, 3)),
    ("add", [(N, 3), (4, 3)], {}, (4, 3)),  # only run time can refute N == 4 or N == 1
    ("concat", [[(N, 3), (2, 3)]], dict(axis=0), (N + 2, 3)),
    ("split", [(2 * N, 3)], dict(axis=0, ratios=[1, 1]), [(N, 3), (N, 3)]),
    ("slice", [(N, 3)], dict(axes=[0], begin=[1], end=[0], stride=[]), (N - 1, 3)),
    ("slice", [(N, 3)], dict(axes=[0], begin=[0], end=[-1], stride=[]), (N - 1, 3)),
])
def test_symbolic_dims_flow_through(name, operands, attributes, expected):
    assert SHAPE_RULES[name](*operands, **attributes) == expected


def test_symbolic_dims_still_catch_certain_errors():
    with pytest.raises(ValueError):
        SHAPE_RULES["add"]((N, 3), (N + 1, 2))
    with pytest.raises(ValueError):
        SHAPE_RULES["matmul"]((N, 5, 7), (N, 6, 2), transposeA=False, transposeB=False)


def test_tract_symbols_are_sympy_dims():
    text = ("version 1.0;\nextension tract_registry tract_core;\nextension tract_symbol B;\n"
            "graph G( x ) -> ( y ) { x = tract_core_external(shape = [B, 4], datum_type = 'f32');"
            " y = reshape(x, shape = [2, -1]); }")
    shapes = our_shapes(text)
    b = sympy.Symbol("B", integer=True, positive=True)
    assert shapes["x"] == [b, 4]
    assert shapes["y"] == [2, 2 * b]


# ---- the standard library against the Khronos parser's --------------------------------------


OUR_STDLIB = (Path(__file__).parents[1] / "nnefopt" / "frontend" / STANDARD).read_text()
# The nnef package ships its parser's C++ source, the standard library text included.
KHRONOS_STDLIB_SOURCE = Path(nnef.__file__).parent / "cpp" / "include" / "nnef" / "comp" / "stdlib_source.h"


def _headers(text: str) -> dict[str, str]:
    """Each fragment's declaration up to its body, whitespace and comments removed: name,
    generic, parameters with types and defaults, results."""
    text = re.sub(r"#[^\n]*", "", text)
    return {m.group(1): re.sub(r"\s+", "", m.group(0)) for m in re.finditer(r"fragment\s+(\w+)[^{;]*", text)}


def test_every_standard_operation_has_a_shape_rule():
    assert set(standard_operations()) <= set(SHAPE_RULES)


def test_stdlib_names_are_the_khronos_standard_operations():
    legacy = {"max_unpool", "avg_unpool"}  # pre-1.0 names the parser's shape table still knows
    assert set(standard_operations()) == set(nnef.StandardOperations) - legacy


def test_stdlib_declarations_equal_the_khronos_parsers():
    source = KHRONOS_STDLIB_SOURCE.read_text()
    theirs = _headers("".join(re.findall(r'R"STDLIB\((.*?)\)STDLIB"', source, re.S)))
    ours = _headers(OUR_STDLIB)
    assert list(ours) == list(standard_operations())  # the regex sees what our parser sees
    assert ours == theirs


def _sample_argument(param: ast.Param, flag: str) -> str:
    """A value of the parameter's type, in NNEF text; `flag` for every logical."""
    type_ = param.type
    if isinstance(type_, ast.ArrayType) and isinstance(type_.item, ast.TensorType):
        return "[t, t]"
    if isinstance(type_, ast.TensorType):
        return {"integer": "ti", "logical": "tl"}.get(type_.item.name, "t")
    samples = {"integer": "2", "scalar": "1.5", "logical": flag, "string": "'constant'", "?": "1.0"}
    if isinstance(type_, ast.ArrayType):
        return "[(0, 1)]" if isinstance(type_.item, ast.TupleType) else f"[{samples[type_.item.name]}]"
    return samples[type_.name]


_COMPOUND = sorted(name for name, f in standard_operations().items() if f.body is not None)


@pytest.mark.parametrize("flag", ["true", "false"])
@pytest.mark.parametrize("name", _COMPOUND)
def test_compound_bodies_lower_as_the_khronos_ones(name, flag):
    """Both libraries given to the Khronos parser, every compound operation lowered: the
    same primitive operations, attributes and operands come out. (It also checks that our
    file parses with the Khronos parser.)"""
    fragment = standard_operations()[name]
    args = ", ".join(f"{p.name} = {_sample_argument(p, flag)}" for p in fragment.params)
    results = fragment.results
    lhs = "[r0, r1]" if isinstance(results[0].type, ast.ArrayType) else ", ".join(f"r{i}" for i in range(len(results)))
    text = ("version 1.0;\ngraph G( t, ti, tl ) -> ( r0 )\n{\n    t = external<scalar>(shape = [1]);\n"
            "    ti = external<integer>(shape = [1]);\n    tl = external<logical>(shape = [1]);\n"
            f"    {lhs} = {name}({args});\n}}\n")

    def lowered(stdlib):
        graph = nnef.parse_string(text, stdlib=stdlib, lowered=_COMPOUND)
        return [(op.name, dict(op.attribs), dict(op.inputs), dict(op.outputs), op.dtype) for op in graph.operations]

    assert lowered(OUR_STDLIB) == lowered(None)
