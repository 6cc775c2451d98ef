"""Grammar-aware generators: NNEF graphs that look valid (a chain of operations over
externals and constants, with plausible attributes), then one structural mutation
(wrong type, shape or arity, a huge number, unicode, deep nesting, cyclic or duplicate
names, 2^31-element declared shapes); and pass-pipeline texts.

Seeded `random.Random` rather than hypothesis strategies: the campaign must replay an
input from (seed, index) alone, in a forked child, thousands of times a minute."""

from __future__ import annotations

import random

from tests.fuzzing.mutate import NASTY_TOKENS, huge_tokens

UNARY = ["relu", "sigmoid", "tanh", "exp", "abs", "neg", "sqrt", "copy", "softmax", "elu", "log", "not", "floor",
         "sign", "rcp", "sqr"]
BINARY = ["add", "sub", "mul", "div", "max", "min", "pow", "lt", "eq", "and", "matmul"]


def _shape(rng: random.Random, rank: int | None = None) -> list[int]:
    rank = rng.randrange(1, 5) if rank is None else rank
    return [rng.choice([1, 1, 2, 3, 4]) for _ in range(rank)]


# Operations whose kernels fold-constants runs on constant operands (of any rank: the
# wrong ranks are the point).
MORE = ["conv({x}, {y})", "deconv({x}, {y})", "argmax_reduce({x}, axes = [0])", "mean_reduce({x}, axes = [0])",
        "tile({x}, repeats = {ones})", "stack([{x}, {y}], axis = 0)", "box({x}, size = {ones})",
        "nearest_upsample({x}, factor = [2])", "matmul({x}, {y}, transposeA = true)", "local_response_normalization("
        "{x}, size = {ones})", "batch_normalization({x}, {y}, {y}, {y}, {y}, epsilon = 0.0)", "l2_normalization({x}, "
        "axes = [0])", "avg_pool({x}, size = {ones}, border = 'constant')", "gather({x}, {y}, axis = 0)",
        "split({x}, axis = 0, ratios = [1])", "softmax({x}, axes = [{rank}])", "min_reduce({x}, axes = [])",
        "pad({x}, padding = [(0, 0)] * 10)", "reshape({x}, shape = [0, -1, -1])", "linear({x}, {y}, {x})"]


def _op(rng: random.Random, x: str, y: str, rank: int) -> str:
    if rng.random() < 0.25:
        return rng.choice(MORE).format(x=x, y=y, ones=[1] * rank, rank=rank)
    return _SHAPED[rng.randrange(len(_SHAPED))](rng, x, y, rank)


def _transpose(rng: random.Random, x: str, rank: int) -> str:
    axes = list(range(rank))
    rng.shuffle(axes)
    return f"transpose({x}, axes = {axes})"


# Operations whose arguments fit the operand's rank, each drawing what it needs from rng.
_SHAPED = [
    lambda rng, x, y, rank: f"{rng.choice(UNARY)}({x})",
    lambda rng, x, y, rank: f"{rng.choice(BINARY)}({x}, {y})",
    lambda rng, x, y, rank: _transpose(rng, x, rank),
    lambda rng, x, y, rank: f"reshape({x}, shape = [-1])",
    lambda rng, x, y, rank: f"pad({x}, padding = {[(rng.randrange(3), rng.randrange(3)) for _ in range(rank)]}, "
                            f"border = '{rng.choice(['constant', 'reflect', 'replicate', 'edge'])}')",
    lambda rng, x, y, rank: f"sum_reduce({x}, axes = [{rng.randrange(rank)}])",
    lambda rng, x, y, rank: f"concat([{x}, {y}], axis = {rng.randrange(rank)})",
    lambda rng, x, y, rank: f"slice({x}, axes = [0], begin = [0], end = [1])",
    lambda rng, x, y, rank: f"clamp({x}, 0.0, 1.0)",
    lambda rng, x, y, rank: f"select(gt({x}, 0.0), {x}, {y})",
    lambda rng, x, y, rank: f"linear({x}, {y})",
    lambda rng, x, y, rank: f"max_pool({x}, size = {[1] * rank}, border = 'ignore')",
    lambda rng, x, y, rank: f"mul({x}, {rng.choice(['2.0', '-0.5', '1e30', '0.0'])})",
    lambda rng, x, y, rank: f"squeeze(unsqueeze({x}, axes = [0]), axes = [0])",
]


def nnef_graph(rng: random.Random) -> tuple[list[str], list[str]]:
    """A valid-looking graph as (header lines, body statements)."""
    rank = rng.randrange(1, 5)
    shape = _shape(rng, rank)
    body = [f"input = external<scalar>(shape = {shape});"]
    names = ["input"]
    if rng.random() < 0.5:
        count = 1
        for d in shape:
            count *= d
        values = ", ".join(rng.choice(["0.0", "1.0", "-2.5", "3.0"]) for _ in range(rng.choice([1, count])))
        body.append(f"c = constant<scalar>(shape = {shape}, value = [{values}]);")
        names.append("c")
    for i in range(rng.randrange(1, 8)):
        x, y = rng.choice(names), rng.choice(names)
        body.append(f"t{i} = {_op(rng, x, y, rank)};")
        names.append(f"t{i}")
    body.append(f"output = copy({names[-1]});")
    header = ["version 1.0;"]
    if rng.random() < 0.3:
        header.append("extension KHR_enable_fragment_definitions, KHR_enable_operator_expressions;")
        header.append("fragment twice( x: tensor<scalar> ) -> ( y: tensor<scalar> ) { y = add(x, x); }")
    return header, body


def _structural_mutation(rng: random.Random, body: list[str]) -> None:
    i = rng.randrange(len(body))
    kind = rng.randrange(12)
    if kind == 0:  # a duplicate name
        body.insert(rng.randrange(len(body) + 1), body[i])
    elif kind == 1:  # a cycle: a statement using what comes after it
        body[i] = body[i].replace("(input", "(output", 1)
    elif kind == 2:  # a shape of 2^31 (or more) elements declared, never read
        big = rng.choice([[2**31], [65536, 32768], [2**16, 2**16, 2**16], [2**63 - 1], [2**64]])
        body.insert(i, f"big = constant<scalar>(shape = {big}, value = [0.0]);")
        if rng.random() < 0.5:
            body.insert(i + 1, f"padded = pad(input, padding = [({2**30}, {2**30})], border = 'constant');")
    elif kind == 3:  # a wrong type
        body[i] = body[i].replace("axes = [", rng.choice(["axes = ['a', ", "axes = [1.5, ", "axes = [true, "]), 1)
    elif kind == 4:  # a wrong arity
        body[i] = body[i].replace(")", rng.choice([", input)", ", 1, 2, 3)", ")"]), 1)
        body[i] = body[i].replace("(", "(" if rng.random() < 0.5 else "()", 1)
    elif kind == 5:  # a huge or degenerate number
        body[i] = body[i].replace("1", huge_tokens(rng) if rng.random() < 0.5 else rng.choice(NASTY_TOKENS), 1)
    elif kind == 6:  # unicode names
        name = rng.choice(["é", "名前", "x\u202e", "\ufeffx", "𝔁"])
        body[i] = body[i].replace("t", name, 1)
    elif kind == 7:  # deep nesting in an attribute or an expression
        depth = rng.choice([50, 1000, 100_000])
        nest = rng.choice([("(" * depth, ")" * depth), ("[" * depth, "]" * depth), ("relu(" * depth, ")" * depth)])
        body[i] = body[i].replace("input", nest[0] + "input" + nest[1], 1)
    elif kind == 8:  # a shape with a symbol where an integer is needed
        body[i] = body[i].replace("shape = [", rng.choice(["shape = [N, ", "shape = [input, ", "shape = [-1, -1, "]), 1)
    elif kind == 9:  # wrong generic or unknown attribute
        body[i] = body[i].replace("(", rng.choice(["<integer>(", "<logical>(", "<?>("]), 1)
    elif kind == 10:  # a padding or stride with too many items
        body[i] = body[i].replace("border =", "stride = " + str([1] * rng.choice([0, 10, 1000])) + ", border =", 1)
    else:  # a statement cut short
        body[i] = body[i][: rng.randrange(len(body[i]) + 1)]


def nnef_text(rng: random.Random) -> str:
    """graph.nnef text: valid-looking, with 0 to 3 structural mutations."""
    header, body = nnef_graph(rng)
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        _structural_mutation(rng, body)
    return "\n".join(header) + "\n\ngraph G( input ) -> ( output )\n{\n" + "".join(f"    {s}\n" for s in body) + "}\n"


PASS_NAMES = ["default", "export-nnef", "canonicalize", "cse", "dce", "fold-constants", "fuse", "layout",
              "lower-tract", "portable-spelling", "quantize", "equalize", "rewrite"]
# Option values per pass: plausible ones, then the generic bad ones below. Calibration
# reads only files that do not exist (the npy target fuzzes real ones), and no option
# names a file to write: a pipeline writes nothing outside the output.
OPTIONS = {
    "fold-constants": {"max-elements": ["0", "16", "-1"]},
    "fuse": {"activations": ["true", "false"], "pads": ["true", "false"]},
    "layout": {"to": ["nhwc", "nchw"]},
    "quantize": {"samples": ["1", "4", "0", "-3"], "method": ["auto", "minmax", "percentile", "entropy", "mse", "x"],
                 "per-channel": ["true", "false"], "bits": ["8", "4", "16", "1", "0", "33"],
                 "profile": ["portable", "generic", "tract"], "equalize": ["true", "false"],
                 "bias-correction": ["true", "false"], "keep-float": ["output", "relu1,output", "nothing"],
                 "calib": ["/nonexistent/calib.npy", "missing_folder"]},
    "equalize": {"bogus": ["1"]},
    "rewrite": {"rules": ["standard", "stdlib", "registered", "standard+stdlib", "/nonexistent.rules", "+"],
                "engine": ["greedy", "eqsat", "x"], "explain": ["false"], "exact": ["true", "false"]},
}
# quantize calibrates on a few samples here: the defaults cost seconds per input.
SMALL_CALIBRATION = "samples=2"


def _pass_item(rng: random.Random) -> str:
    name = rng.choice(PASS_NAMES)
    options = []
    if name == "quantize" and rng.random() < 0.8:
        options.append(SMALL_CALIBRATION)
    for _ in range(rng.choice([0, 0, 1, 2])):
        known = OPTIONS.get(name, {"bogus": []})
        key = rng.choice(sorted(known))
        value = rng.choice(known[key] + ["true", "0", "-1", "9" * 40, "'x'", "", "{", "1 2"]
                           if rng.random() < 0.3 else known[key] or ["1"])
        options.append(f"{key}={value}")
    return name + ("{" + " ".join(options) + "}" if options else "")


def pipeline_text(rng: random.Random) -> str:
    """A pass pipeline: mostly well-formed, sometimes with bad options, names or brackets."""
    text = ",".join(_pass_item(rng) for _ in range(rng.randrange(0, 5)))
    if rng.random() < 0.4:
        text = "".join(c for c in text if rng.random() > 0.05)
        pos = rng.randrange(len(text) + 1)
        text = text[:pos] + rng.choice(["{", "}", ",", "=", "\"", "'", "{{", " ", "\x00", "é", "(", "[",
                                        "builtin.module(", "a" * 1000]) + text[pos:]
    return text


def quant_text(rng: random.Random, tensor_names: list[str]) -> str:
    """graph.quant entries with plausible and implausible parameters."""
    lines = []
    for _ in range(rng.randrange(1, 5)):
        name = rng.choice(tensor_names + ["nothing", "", "é"])
        number = lambda: rng.choice(["0", "1", "-1", "0.5", "8", "255", "1e30", "nan", "2147483648",  # noqa: E731
                                     "9223372036854775808", "9" * 5000, "-" + "9" * 30])
        kind = rng.choice(["linear_quantize", "zero_point_linear_quantize", "tract_core_quantize", "bogus"])
        args = rng.choice([f"min = {number()}, max = {number()}, bits = {number()}",
                           f"zero_point = {number()}, scale = {number()}, bits = {number()}, signed = true, "
                           f"symmetric = false", ""])
        lines.append(f'"{name}": {kind}({args});')
    return "\n".join(lines) + "\n"


RULE_UNARY = ["relu", "exp", "neg", "sigmoid", "abs", "sqr", "sqrt", "tanh", "copy", "rcp", "log"]
RULE_BINARY = ["+", "-", "*", "/", "^"]
RULE_PARAMETERS = ["x: tensor<scalar>", "y: tensor<scalar>", "a: scalar", "n: integer", "axes: integer[]",
                   "flag: logical", "t: tensor<integer>", "s: string"]
RULE_GUARDS = ["a >= 0.0", "a > 0.0 && a < 1.0", "rank(x) == 4", "shape_of(x)[0] == 1", "is_constant(y)",
               "n != 0", "a", "rank(q) > 1", "1 / 0 == 0", "x > 0.0"]


def _rule_expression(rng: random.Random, depth: int) -> str:
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(["x", "y", "a", "1.0", "0.0", "2.0", "x", "n", "axes"])
    if rng.random() < 0.5:
        return f"{rng.choice(RULE_UNARY)}({_rule_expression(rng, depth - 1)})"
    if rng.random() < 0.2:
        return f"sum_reduce({_rule_expression(rng, depth - 1)}, axes = {rng.choice(['axes', '[0]', '[]', '[9]'])})"
    return f"({_rule_expression(rng, depth - 1)} {rng.choice(RULE_BINARY)} {_rule_expression(rng, depth - 1)})"


def rule_text(rng: random.Random) -> str:
    """One rewrite rule over random parameters, guards and expressions: most of them are
    unsound, for the verifier to refuse; some do not parse, for the rule reader to refuse."""
    parameters = rng.sample(RULE_PARAMETERS, rng.randrange(1, 4))
    body = [f"where {rng.choice(RULE_GUARDS)};" for _ in range(rng.choice([0, 0, 1, 2]))]
    if rng.random() < 0.2:
        body.append(f"e = {_rule_expression(rng, 2)};")
    body.append(f"{_rule_expression(rng, 3)} => {_rule_expression(rng, 2)};")
    return f"rule r{rng.randrange(100)}( {', '.join(parameters)} )\n{{\n    " + "\n    ".join(body) + "\n}\n"
