"""Shape rules against the Khronos parser's infer_shapes on one-operation graphs, symbolic
dims, and the shipped standard library against the Khronos parser's own signatures."""

from __future__ import annotations

import nnef
import pytest
import sympy

from nnefopt.frontend import ast
from nnefopt.frontend.builder import GraphBuilder
from nnefopt.frontend.parser import parse_document
from nnefopt.frontend.shape_inference import infer_shapes
from nnefopt.frontend.stdlib import standard_operations
from nnefopt.shapes import SHAPE_RULES


def graph_text(inputs: dict[str, list], statements: list[str], outputs: list[str]) -> str:
    """`inputs` maps names to shapes; a name starting with `i` is an integer tensor."""
    lines = [f"{name} = external<{'integer' if name.startswith('i') else 'scalar'}>(shape = {shape});"
             for name, shape in inputs.items()] + statements
    body = "\n".join("    " + line for line in lines)
    return f"version 1.0;\ngraph G( {', '.join(inputs)} ) -> ( {', '.join(outputs)} )\n{{\n{body}\n}}\n"


def our_shapes(text: str) -> dict:
    model = GraphBuilder(parse_document(text, "g.nnef"), load_tensor=None).build()
    infer_shapes(model)
    return {name: list(t.shape) for name, t in model.tensors.items()}


def khronos_shapes(text: str) -> dict:
    graph = nnef.parse_string(text)
    nnef.infer_shapes(graph)
    return {name: list(t.shape) for name, t in graph.tensors.items()}


CASES = [
    ({"x": [2, 3], "y": [2, 1]}, "z = add(x, y);"),
    ({"x": [2, 3, 4, 5], "y": [1, 3]}, "z = mul(x, y);"),  # left-aligned broadcasting
    ({"x": [4], "y": []}, "z = sub(x, y);"),
    ({"c": [2, 3], "x": [2, 3], "y": [1, 3]}, "z = select(c > 0.0, x, y);"),
    ({"x": [1, 3, 32, 32], "w": [8, 3, 3, 3]}, "z = conv(x, w);"),
    ({"x": [1, 3, 31, 33], "w": [8, 3, 3, 5]}, "z = conv(x, w, stride = [2, 3]);"),
    ({"x": [1, 3, 32, 32], "w": [8, 3, 3, 3]}, "z = conv(x, w, padding = [(0, 0), (1, 2)], stride = [2, 2], dilation = [2, 1]);"),
    ({"x": [2, 8, 9, 9], "w": [8, 1, 3, 3]}, "z = conv(x, w, groups = 0);"),
    ({"x": [2, 8, 9, 9], "w": [16, 4, 3, 3], "b": [1, 16]}, "z = conv(x, w, b, groups = 2);"),
    ({"x": [1, 4, 7, 7], "w": [4, 2, 3, 3]}, "z = deconv(x, w, stride = [2, 2]);"),
    ({"x": [1, 4, 7, 7], "w": [4, 2, 3, 3]}, "z = deconv(x, w, padding = [(1, 1), (1, 1)], stride = [2, 2]);"),
    ({"x": [1, 4, 7, 7], "w": [4, 2, 3, 3]}, "z = deconv(x, w, padding = [(1, 1), (1, 1)], stride = [2, 2], output_shape = [1, 2, 14, 14]);"),
    ({"x": [1, 4, 7, 7], "w": [4, 1, 3, 3]}, "z = deconv(x, w, groups = 0);"),
    ({"x": [1, 3, 10, 10]}, "z = max_pool(x, size = [1, 1, 3, 3], stride = [1, 1, 2, 2]);"),
    ({"x": [1, 3, 10, 10]}, "z = avg_pool(x, size = [1, 1, 3, 3], padding = [(0, 0), (0, 0), (1, 1), (1, 1)], stride = [1, 1, 2, 2], border = 'ignore');"),
    ({"x": [1, 3, 10, 10]}, "z = box(x, size = [1, 1, 2, 2], stride = [1, 1, 2, 2], dilation = [1, 1, 2, 2]);"),
    ({"x": [1, 3, 5, 5]}, "z = debox(x, size = [1, 1, 2, 2], stride = [1, 1, 2, 2]);"),
    ({"x": [1, 3, 8, 8]}, "z = nearest_upsample(x, factor = [2, 3]);"),
    ({"x": [1, 3, 8, 8]}, "z = area_downsample(x, factor = [2, 4]);"),
    ({"x": [1, 3, 8, 8]}, "z = multilinear_upsample(x, factor = [2, 2], method = 'aligned');"),
    ({"x": [2, 3, 4]}, "z = sum_reduce(x, axes = [0, 2]);"),
    ({"x": [2, 3, 4]}, "z = argmax_reduce(x, axes = [1]);"),
    ({"x": [2, 3, 4]}, "m, v = moments(x, axes = [1, 2]);"),
    ({"x": [2, 3, 4]}, "z = softmax(x, axes = [2]);"),
    ({"x": [2, 3, 4, 5]}, "z = reshape(x, shape = [0, -1]);"),
    ({"x": [2, 3, 4, 5]}, "z = reshape(x, shape = [-1], axis_start = 1, axis_count = 2);"),
    ({"x": [2, 3, 4, 5]}, "z = reshape(x, shape = [6, 2, 5], axis_start = 1);"),
    ({"x": [2, 1, 4, 1]}, "z = squeeze(x, axes = [1, 3]);"),
    ({"x": [2, 4]}, "z = unsqueeze(x, axes = [0, 3]);"),
    ({"x": [2, 3, 4, 5]}, "z = transpose(x, axes = [0, 2, 1]);"),
    ({"x": [2, 3], "y": [2, 5]}, "z = concat([x, y], axis = 1);"),
    ({"x": [2, 6]}, "[a, b, c] = split(x, axis = 1, ratios = [1, 2, 3]);"),
    ({"x": [2, 6], "y": [2, 6]}, "z = stack([x, y], axis = 2);"),
    ({"x": [3, 2]}, "[a, b, c] = unstack(x, axis = 0);"),
    ({"x": [10, 20, 30]}, "z = slice(x, axes = [0, 2], begin = [2, -10], end = [8, 0]);"),
    ({"x": [10, 20, 30]}, "z = slice(x, axes = [1], begin = [1], end = [-1], stride = [3]);"),
    ({"x": [10, 20, 30]}, "z = slice(x, axes = [0, 1], begin = [-1, 15], end = [-11, 2], stride = [-1, -4]);"),
    ({"x": [2, 3]}, "z = pad(x, padding = [(1, 2), (0, 3)]);"),
    ({"x": [2, 3]}, "z = tile(x, repeats = [3, 2]);"),
    ({"x": [5, 6, 7], "i": [2, 3]}, "z = gather(x, i, axis = 1);"),
    ({"a": [4, 2, 3], "b": [4, 5, 3]}, "z = matmul(a, b, transposeB = true);"),
    ({"a": [3, 2], "b": [3, 5]}, "z = matmul(a, b, transposeA = true);"),
    ({"x": [7, 16], "w": [10, 16], "b": [1, 10]}, "z = linear(x, w, b);"),
    ({"x": [2, 16, 5, 5], "m": [1, 16]}, "z = batch_normalization(x, m, m, m, m, epsilon = 1e-3);"),
    ({"x": [1, 8, 6, 6]}, "z = local_response_normalization(x, size = [1, 3, 1, 1]);"),
    ({"x": [4, 5]}, "z = l2_normalization(x, axes = [1]);"),
    ({"x": [4, 5]}, "z = clamp(x, 0.0, 6.0);"),
    ({"x": [4, 5]}, "z = linear_quantize(x, -1.0, 1.0, bits = 8);"),
    ({"x": [1, 3, 8, 8]}, "v, i = max_pool_with_index(x, size = [1, 1, 2, 2], stride = [1, 1, 2, 2]);"),
    ({"x": [1, 4, 5, 5], "p": [4, 1, 3, 3], "q": [6, 4, 1, 1]}, "z = separable_conv(x, p, q);"),
]


@pytest.mark.parametrize("inputs,statement", CASES, ids=[c[1].split("=")[1].split("(")[0].strip() + f"-{i}" for i, c in enumerate(CASES)])
def test_shapes_match_khronos(inputs, statement):
    outputs = [name.strip("[] ") for name in statement.split("\n")[-1].split("=")[0].split(",")]
    text = graph_text(inputs, [statement], outputs)
    theirs = khronos_shapes(text)
    ours = our_shapes(text)
    assert theirs  # names the Khronos parser gives to nested results differ from ours
    for name in [*inputs, *outputs]:
        assert ours[name] == theirs[name], name


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
    from nnefopt.errors import NNEFError

    with pytest.raises(NNEFError, match=words) as info:
        our_shapes(graph_text(inputs, [statement], ["z"]))
    assert str(info.value).startswith(f"g.nnef:{4 + len(inputs)}:")


def test_symbolic_batch_flows_through():
    n = sympy.Symbol("N", integer=True, positive=True)
    assert SHAPE_RULES["conv"]((n, 3, 32, 32), (8, 3, 3, 3), (), border="constant", padding=[], stride=[2, 2],
                               dilation=[], groups=1) == (n, 8, 16, 16)
    assert SHAPE_RULES["reshape"]((n, 8, 4, 4), shape=[0, -1], axis_start=0, axis_count=-1) == (n, 128)
    flat = SHAPE_RULES["reshape"]((2 * n, 8, 4), shape=[-1], axis_start=0, axis_count=-1)
    assert flat == (64 * n,)
    assert SHAPE_RULES["matmul"]((n, 5, 7), (1, 7, 2), transposeA=False, transposeB=False) == (n, 5, 2)


def test_tract_symbols_are_sympy_dims():
    text = ("version 1.0;\nextension tract_registry tract_core;\nextension tract_symbol B;\n"
            "graph G( x ) -> ( y ) { x = tract_core_external(shape = [B, 4], datum_type = 'f32');"
            " y = reshape(x, shape = [2, -1]); }")
    shapes = our_shapes(text)
    assert shapes["x"] == [sympy.Symbol("B", integer=True, positive=True), 4]
    assert shapes["y"] == [2, 2 * sympy.Symbol("B", integer=True, positive=True)]


def test_every_standard_operation_has_a_shape_rule():
    assert set(standard_operations()) <= set(SHAPE_RULES)


def test_stdlib_names_are_the_khronos_standard_operations():
    # The Khronos parser still accepts two pre-1.0 names that the 1.0.5 library dropped.
    legacy = {"max_unpool", "avg_unpool"}
    assert set(standard_operations()) == set(nnef.StandardOperations) - legacy


def _sample_argument(param: ast.Param) -> str:
    """A value of the parameter's type, in NNEF text."""
    type_ = param.type
    if isinstance(type_, ast.ArrayType) and isinstance(type_.item, ast.TensorType):
        return "[t, t]"
    if isinstance(type_, ast.TensorType):
        return {"integer": "ti", "logical": "tl"}.get(type_.item.name, "t")
    samples = {"integer": "1", "scalar": "1.0", "logical": "true", "string": "'constant'", "?": "1.0"}
    if isinstance(type_, ast.ArrayType):
        if isinstance(type_.item, ast.TupleType):
            return "[(0, 0)]"
        return f"[{samples[type_.item.name]}]"
    return samples[type_.name]


# Operations the parser constrains beyond their signature: tensor-introducing ones may
# only define graph inputs or take no tensors; `update` needs a variable.
_SPECIAL = {"external", "variable", "constant", "update"}


@pytest.mark.parametrize("name", sorted(set(standard_operations()) - _SPECIAL))
def test_khronos_parser_accepts_our_signature(name):
    """Every parameter by name, with a value of our declared type: the Khronos parser
    refuses an unknown name or a type its own declaration does not allow."""
    fragment = standard_operations()[name]
    args = ", ".join(f"{p.name} = {_sample_argument(p)}" for p in fragment.params)
    results = fragment.results
    if isinstance(results[0].type, ast.ArrayType):
        lhs = "[r0, r1]"
    else:
        lhs = ", ".join(f"r{i}" for i in range(len(results)))
    deducible = any(str(p.type).startswith("tensor<?>") for p in fragment.params)
    generic = "<scalar>" if fragment.generic and not deducible else ""
    text = ("version 1.0;\ngraph G( t, ti, tl ) -> ( r0 )\n{\n    t = external<scalar>(shape = [1]);\n"
            "    ti = external<integer>(shape = [1]);\n    tl = external<logical>(shape = [1]);\n"
            f"    {lhs} = {name}{generic}({args});\n}}\n")
    nnef.parse_string(text)
