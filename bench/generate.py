"""Synthetic NNEF models for benchmarks: real architectures, random weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnefopt.frontend.tensor_file import write_tensor


class _Writer:
    def __init__(self, folder: Path, seed: int = 0):
        self.folder = folder
        self.lines: list[str] = []
        self.count = 0
        self.parameters = 0
        self.rng = np.random.default_rng(seed)

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def variable(self, shape: tuple[int, ...], positive: bool = False) -> str:
        name = self.name("v")
        data = (self.rng.standard_normal(shape, dtype=np.float32) * 0.05).astype(np.float32)
        if positive:  # a variance: the model must compute numbers, not NaN
            data = np.abs(data) + np.float32(0.5)
        write_tensor(self.folder / f"{name}.dat", data)
        self.parameters += data.size
        self.lines.append(f"{name} = variable<scalar>(shape = {list(shape)}, label = '{name}');")
        return name

    def op(self, text: str, prefix: str = "t") -> str:
        name = self.name(prefix)
        self.lines.append(f"{name} = {text};")
        return name

    def conv_bn(self, x: str, cin: int, cout: int, k: int, stride: int, relu: bool = True) -> str:
        w = self.variable((cout, cin, k, k))
        pad = k // 2
        y = self.op(f"conv({x}, {w}, 0.0, padding = [({pad}, {pad}), ({pad}, {pad})], stride = [{stride}, {stride}])")
        stats = [self.variable((1, cout), positive=i == 1) for i in range(4)]  # mean, variance, offset, scale
        y = self.op(f"batch_normalization({y}, {stats[0]}, {stats[1]}, {stats[2]}, {stats[3]}, epsilon = 1e-05)")
        return self.op(f"relu({y})") if relu else y

    def write(self, inputs: list[str], outputs: list[str]) -> None:
        body = "\n".join("    " + line for line in self.lines)
        text = f"version 1.0;\n\ngraph G( {', '.join(inputs)} ) -> ( {', '.join(outputs)} )\n{{\n{body}\n}}\n"
        (self.folder / "graph.nnef").write_text(text)


def resnet50(folder: Path, classes: int = 1000) -> int:
    """ResNet-50 (bottleneck blocks 3-4-6-3) at 224x224; returns its parameter count."""
    folder.mkdir(parents=True, exist_ok=True)
    g = _Writer(folder)
    g.lines.append("input = external<scalar>(shape = [1, 3, 224, 224]);")
    x = g.conv_bn("input", 3, 64, 7, 2)
    x = g.op(f"max_pool({x}, size = [1, 1, 3, 3], stride = [1, 1, 2, 2], padding = [(0, 0), (0, 0), (1, 1), (1, 1)])")
    cin = 64
    for stage, (blocks, width) in enumerate([(3, 64), (4, 128), (6, 256), (3, 512)]):
        for block in range(blocks):
            stride = 2 if block == 0 and stage > 0 else 1
            y = g.conv_bn(x, cin, width, 1, 1)
            y = g.conv_bn(y, width, width, 3, stride)
            y = g.conv_bn(y, width, width * 4, 1, 1, relu=False)
            shortcut = g.conv_bn(x, cin, width * 4, 1, stride, relu=False) if block == 0 else x
            x = g.op(f"relu(add({y}, {shortcut}))")
            cin = width * 4
    x = g.op(f"mean_reduce({x}, axes = [2, 3])")
    x = g.op(f"reshape({x}, shape = [1, {cin}])")
    w, b = g.variable((classes, cin)), g.variable((1, classes))
    g.lines.append(f"output = linear({x}, {w}, {b});")
    g.write(["input"], ["output"])
    return g.parameters


def resnet50_onnx(folder: Path, onnx_path: Path) -> None:
    """The generated NNEF model as ONNX, same weights, for onnxruntime to run."""
    graph_onnx(folder, onnx_path, "resnet50")


def mobilenetv2(folder: Path, classes: int = 1000, width: float = 1.0) -> int:
    """MobileNetV2 (inverted residuals, depthwise 3x3, relu6) at 224x224; returns its
    parameter count."""
    folder.mkdir(parents=True, exist_ok=True)
    g = _Writer(folder)
    g.lines.append("input = external<scalar>(shape = [1, 3, 224, 224]);")

    def channels(c: int) -> int:  # torchvision's rounding to a multiple of 8
        rounded = max(8, int(c * width + 4) // 8 * 8)
        return rounded + 8 if rounded < 0.9 * c * width else rounded

    def conv_bn_relu6(x: str, cin: int, cout: int, k: int, stride: int, groups: int = 1, relu6: bool = True) -> str:
        w = g.variable((cout, cin // groups, k, k))
        pad = k // 2
        y = g.op(f"conv({x}, {w}, 0.0, padding = [({pad}, {pad}), ({pad}, {pad})], stride = [{stride}, {stride}], "
                 f"groups = {groups})")
        stats = [g.variable((1, cout), positive=i == 1) for i in range(4)]
        y = g.op(f"batch_normalization({y}, {stats[0]}, {stats[1]}, {stats[2]}, {stats[3]}, epsilon = 1e-05)")
        return g.op(f"clamp({y}, 0.0, 6.0)") if relu6 else y

    cin = channels(32)
    x = conv_bn_relu6("input", 3, cin, 3, 2)
    for expand, c, repeats, first_stride in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                                             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        cout = channels(c)
        for i in range(repeats):
            stride = first_stride if i == 0 else 1
            hidden = cin * expand
            y = conv_bn_relu6(x, cin, hidden, 1, 1) if expand != 1 else x
            y = conv_bn_relu6(y, hidden, hidden, 3, stride, groups=hidden)
            y = conv_bn_relu6(y, hidden, cout, 1, 1, relu6=False)
            x = g.op(f"add({y}, {x})") if stride == 1 and cin == cout else y
            cin = cout
    last = channels(1280) if width > 1.0 else 1280
    x = conv_bn_relu6(x, cin, last, 1, 1)
    x = g.op(f"mean_reduce({x}, axes = [2, 3])")
    x = g.op(f"reshape({x}, shape = [1, {last}])")
    w, b = g.variable((classes, last)), g.variable((1, classes))
    g.lines.append(f"output = linear({x}, {w}, {b});")
    g.write(["input"], ["output"])
    return g.parameters


def mobilenetv2_onnx(folder: Path, onnx_path: Path) -> None:
    graph_onnx(folder, onnx_path, "mobilenetv2")


def graph_onnx(folder: Path, onnx_path: Path, name: str) -> None:
    """A model this module generated, as ONNX with the same weights (only the operations
    the generators write are translated)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from nnefopt.frontend.loader import load_model

    model = load_model(folder)
    nodes, initializers = [], []

    def const(name: str, array: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    for op in model.operations:
        out = op.outputs.get("output") or op.outputs.get("y") or op.outputs.get("z")
        ins, at = op.inputs, op.attribs
        if op.name == "variable":
            const(out, np.asarray(model.tensors[out].data))
        elif op.name == "conv":
            pads = [p for p, _ in at["padding"]] + [q for _, q in at["padding"]]
            nodes.append(helper.make_node("Conv", [ins["input"], ins["filter"]], [out], pads=pads, strides=at["stride"],
                                          group=at.get("groups", 1) or 1))
        elif op.name == "batch_normalization":
            flat = {k: const(f"{out}_{k}", np.asarray(model.tensors[ins[k]].data).reshape(-1))
                    for k in ("scale", "offset", "mean", "variance")}
            nodes.append(helper.make_node("BatchNormalization", [ins["input"], flat["scale"], flat["offset"],
                                                                 flat["mean"], flat["variance"]], [out],
                                          epsilon=at["epsilon"]))
        elif op.name == "max_pool":
            pads = [p for p, _ in at["padding"][2:]] + [q for _, q in at["padding"][2:]]
            nodes.append(helper.make_node("MaxPool", [ins["input"]], [out], kernel_shape=at["size"][2:],
                                          strides=at["stride"][2:], pads=pads))
        elif op.name in ("add", "relu"):
            nodes.append(helper.make_node(op.name.capitalize(), [v for v in ins.values()], [out]))
        elif op.name == "clamp":
            low = const(f"{out}_low", np.asarray(0.0, np.float32))
            high = const(f"{out}_high", np.asarray(6.0, np.float32))
            nodes.append(helper.make_node("Clip", [ins["x"], low, high], [out]))
        elif op.name == "mean_reduce":
            nodes.append(helper.make_node("ReduceMean", [ins["input"]], [out], axes=at["axes"], keepdims=1))
        elif op.name == "reshape":
            shape = const(f"{out}_shape", np.asarray(at["shape"], np.int64))
            nodes.append(helper.make_node("Reshape", [ins["input"], shape], [out]))
        elif op.name == "linear":
            bias = const(f"{out}_bias", np.asarray(model.tensors[ins["bias"]].data).reshape(-1))
            nodes.append(helper.make_node("Gemm", [ins["input"], ins["filter"], bias], [out], transB=1))
    classes = model.tensors["output"].shape[-1]
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, classes])], initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(onnx_path))


def conv_chain(folder: Path, blocks: int, channels: int = 4) -> int:
    """`blocks` conv + batch_normalization + relu blocks on an 8x8 image; weights are
    constants so that a 10,000-block model is one file. Returns the operation count."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"x0 = external<scalar>(shape = [1, {channels}, 8, 8]);"]
    for i in range(blocks):
        lines += [
            f"w{i} = constant<scalar>(shape = [{channels}, {channels}, 3, 3], value = [0.01]);",
            f"m{i} = constant<scalar>(shape = [1, {channels}], value = [0.5]);",
            f"c{i} = conv(x{i}, w{i}, padding = [(1, 1), (1, 1)]);",
            f"b{i} = batch_normalization(c{i}, m{i}, m{i}, m{i}, m{i}, epsilon = 1e-05);",
            f"x{i + 1} = relu(b{i});",
        ]
    body = "\n".join("    " + line for line in lines)
    (folder / "graph.nnef").write_text(f"version 1.0;\n\ngraph G( x0 ) -> ( x{blocks} )\n{{\n{body}\n}}\n")
    return len(lines)


def noisy_conv_chain(folder: Path, blocks: int, channels: int = 8, size: int = 8) -> int:
    """`blocks` conv + batch_normalization + relu blocks on a `size`x`size` image, with
    torch-to-nnef's noise: every weight (filter and the four `[1, C]` batch-norm
    statistics, one small `.dat` each) is followed by a `copy` of it that nothing uses.
    Returns the number of compute operations: 8 per block (5 copies, conv,
    batch_normalization, relu)."""
    folder.mkdir(parents=True, exist_ok=True)
    g = _Writer(folder)
    g.lines.append(f"input = external<scalar>(shape = [1, {channels}, {size}, {size}]);")
    x = "input"
    for _ in range(blocks):
        w = g.variable((channels, channels, 3, 3))
        g.op(f"copy({w})", "clone")
        stats = [g.variable((1, channels), positive=i == 1) for i in range(4)]  # mean, variance, offset, scale
        for s in stats:
            g.op(f"copy({s})", "clone")
        x = g.op(f"conv({x}, {w}, 0.0, padding = [(1, 1), (1, 1)])")
        x = g.op(f"batch_normalization({x}, {', '.join(stats)}, epsilon = 1e-05)")
        x = g.op(f"relu({x})")
    g.write(["input"], [x])
    return 8 * blocks
