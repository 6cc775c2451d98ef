"""quantize: int8 post-training quantization.

`quantize{calib="calib.npy" samples=N method=auto|minmax|percentile|entropy|mse per-channel=false
bits=8 keep-float=NAMES report="out.json" profile=portable|generic equalize=false
bias-correction=true}`

1. the graph is prepared as `lower-tract,fold-constants,canonicalize,fuse` makes it
   (standard spelling, known weights, batch norms folded), then fused `conv_<activation>`
   operations are split (each gets its entry);
2. cross-layer equalization (`equalize`, off by default) evens out the channels' weight
   ranges; measured with MSE ranges and bias correction on the shared models it costs
   0.5-1.5 dB (mobilenetv2_035 42.0 -> 40.6 dB, resnet8 44.6 -> 43.1), as it widens
   the activation ranges it moves the spread into;
3. the IR interpreter runs the calibration inputs, streaming each value's statistics;
4. `assign` decides, from the op table's traits, which values are quantized and which
   share one entry (nnefopt/quant/assign.py); each group's range is chosen by `method`
   (auto: MSE-optimal) on its statistics;
5. `copy` operations quantize float values that quantized ones read, and requantize into
   a shared scale; every quantized value gets its entry; filters become int8 codes and
   biases int32 in the accumulator's scale (nnefopt/quant/rewrite.py, weights.py);
6. bias correction (`bias-correction`) subtracts from each layer's bias the mean error
   its rounded weights make on its quantized input over the calibration inputs
   (nnefopt/quant/bias_correction.py);
7. the report: each layer's SQNR against the float model, and what stayed float.

per-channel=true makes steps 4-6 twice, with each filter's own per-channel scales and
with the per-tensor scale written per channel, and keeps the model whose outputs are
nearer the float model's on the calibration inputs (nnefopt/quant/granularity.py): per
channel only where it helps, so it is never worse than per-tensor there.

profile=portable writes what tract runs in integer arithmetic in standard NNEF, so that
the Khronos parser reads it too: no entry on a matmul output, one scale per tensor,
int8 from the first quantized value to the outputs (no float operation after an int8
one: tract has no standard way back), deconv, a spatial mean and leaky relu spelled
as tract computes them in int8 (nnefopt/quant/tract_spelling.py); profile=generic also
quantizes matmul, allows per-channel scales (the specification's tensor-valued
scales) and float islands anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from nnefopt.dialects.quantization import QuantAttr, quantization_of
from nnefopt.errors import NNEFError, warn
from nnefopt.export.from_ir import graph_of, tensor_names
from nnefopt.passes import register_pass

METHODS = ("auto", "minmax", "percentile", "entropy", "mse")
PROFILES = ("portable", "generic")
ACTIVATION_METHOD = {"auto": "mse"}  # what `auto` picks for activations
CHECK_BATCHES = 64  # calibration batches that bias correction and the report run (float and int8)


def equalize_for_quantization(module: ModuleOp) -> None:
    """Cross-layer equalization of conv -> activation -> conv chains before quantizing:
    per-channel weight ranges made alike, so one per-tensor scale fits every channel."""
    from nnefopt.quant.equalize import equalize

    equalize(module)


@register_pass
@dataclass(frozen=True)
class Quantize(ModulePass):
    """int8 post-training quantization: calibrate, choose ranges, integer weights"""

    name = "quantize"

    calib: str | None = None
    samples: int | None = None
    method: str = "auto"
    per_channel: bool = False
    bits: int = 8
    keep_float: tuple[str, ...] = ()
    report: str | None = None
    profile: str = "portable"
    equalize: bool = False
    bias_correction: bool = True

    def apply(self, ctx, op: ModuleOp) -> None:
        self.check_options()
        quantize_module(op, self)

    def check_options(self) -> None:
        if self.method not in METHODS:
            raise NNEFError(f"quantize: unknown method '{self.method}'; expected one of {', '.join(METHODS)}")
        if self.profile not in PROFILES:
            raise NNEFError(f"quantize: unknown profile '{self.profile}'; expected portable or generic")
        if self.per_channel and self.profile == "portable":
            raise NNEFError("quantize: per-channel=true writes tensor-valued scales, which tract does not read; "
                            "add profile=generic")
        if not 2 <= self.bits <= 8:
            raise NNEFError(f"quantize: bits={self.bits}; int8 codes hold 2 to 8 bits")
        if self.samples is not None and self.samples < 1:
            raise NNEFError(f"quantize: samples={self.samples}; give at least 1")

    @property
    def keep_float_names(self) -> frozenset[str]:
        return frozenset(n.strip() for item in self.keep_float for n in str(item).split(",") if n.strip())


def quantize_module(module: ModuleOp, options: Quantize) -> dict:
    """Quantize `module` in place as `options` say; returns the report."""
    from nnefopt.progress import progress
    from nnefopt.quant.granularity import adopt, corresponding_values, output_noise
    from nnefopt.quant.observe import calibrate, calibration_batches
    from nnefopt.quant.unfuse import unfuse

    if any(quantization_of(r) is not None for o in graph_of(module).body.block.ops for r in o.results):
        raise NNEFError("quantize: the model is quantized already (it has graph.quant entries)")
    batches = list(calibration_batches(module, options.calib, options.samples))
    prepare(module)
    unfuse(module)
    if options.profile == "portable":
        from nnefopt.quant.tract_spelling import spell_before_assignment

        spell_before_assignment(module)
    unknown = sorted(options.keep_float_names - set(tensor_names(module).values()))
    if unknown:
        warn(f"quantize: keep-float names no tensor of the graph (after fuse): {', '.join(unknown)}")
    if options.equalize:
        equalize_for_quantization(module)
    # The float model, for bias correction and the report, compared value by value: taken
    # after equalization, which keeps the outputs but rescales channels inside its chains.
    reference = module.clone()
    stats = calibrate(module, progress(batches, what="calibrating"))
    check = batches[:CHECK_BATCHES]
    trial = None
    if options.per_channel:  # the per-tensor scales too, kept if the output is nearer the float one
        trial = module.clone()
        trial_stats = {twin: stats[value] for value, twin in corresponding_values(module, trial).items()
                       if value in stats}
    method, layers, floats, corrected = finish_quantization(module, stats, reference, check, options)
    options_note = None
    if trial is not None:
        tried = finish_quantization(trial, trial_stats, reference, check, options, broadcast=True)
        own, shared = output_noise(reference, module, check), output_noise(reference, trial, check)
        if shared < own:
            adopt(module, trial)
            method, layers, floats, corrected = tried
        options_note = {"per_channel_output_noise": own, "per_tensor_output_noise": shared,
                        "kept": "per-tensor scales" if shared < own else "per-channel scales"}
    report = build_report(reference, module, check, options, method, layers, floats, corrected)
    if options_note is not None:
        report["per_channel_choice"] = options_note
    if options.profile == "portable":  # last: bias correction and the report pair values by name
        from nnefopt.quant.tract_names import rename_fragment_locals

        rename_fragment_locals(module)
    from nnefopt.quant.report import write

    write(report, options.report)
    return report


def finish_quantization(module: ModuleOp, stats, reference: ModuleOp, check, options: Quantize, *,
                        broadcast: bool = False):
    """From the calibration statistics to the quantized graph: entries, copies, integer
    weights (with `broadcast`, per-channel scales holding the per-tensor one), the
    portable profile's means and leaky relus spelled for tract, bias correction.
    Returns (method, layers, floats, corrected)."""
    from nnefopt.quant.assign import assign
    from nnefopt.quant.bias_correction import correct_biases
    from nnefopt.quant.rewrite import insert_copies, quantize_weights, set_entries
    from nnefopt.quant.tract_spelling import leaky_relus_as_max, means_as_convs

    plan = assign(module, keep_float=options.keep_float_names, portable=options.profile == "portable")
    method = ACTIVATION_METHOD.get(options.method, options.method)
    entries = choose_entries(plan, stats, method, options.bits)
    floats = [(tensor_names(module).get(op.results[0], "?"), op.OP_DEF.name if hasattr(op, "OP_DEF") else op.name,
               reason) for op, reason in plan.floats]
    insert_copies(module, plan, entries)
    set_entries(plan, entries)
    convs = leaky_relus_as_max(module) + means_as_convs(module) if options.profile == "portable" else []
    layers = quantize_weights(module, plan.layers + convs, bits=options.bits, per_channel=options.per_channel,
                              broadcast=broadcast)
    corrected = correct_biases(reference, module, check) if options.bias_correction else 0
    return method, layers, floats, corrected


def prepare(module: ModuleOp) -> None:
    """The graph as the default pipeline makes it, in standard spelling: tract's core
    operations as the standard ones that the int8 rules know (a nearest
    `tract_core_resize` is a nearest_upsample, as every export writes it), a layer
    quantized only when its weights are known (torch-to-nnef's `unsqueeze(variable)`
    folded), a batch norm after it folded into them, a relu6 spelled as a fragment
    (`hard_tanh`) a clamp."""
    from nnefopt.api import optimize

    optimize(module, "lower-tract,fold-constants,canonicalize,fuse", verify_each=False)


def choose_entries(plan, stats, method: str, bits: int) -> dict[int, QuantAttr]:
    """Each group's entry: the range `method` gives on the merged statistics of its values,
    widened to the whole range of an operation that says it (softmax: [0, 1])."""
    from nnefopt.quant.observe import Statistics
    from nnefopt.quant.ranges import choose, scale_zero_point
    from nnefopt.quant.rewrite import activation_entry

    observed = plan.groups()
    roots = {plan.find(g) for g in range(len(plan.parent))}
    known: dict[int, list[tuple[float, float]]] = {}  # the whole range an op gives, by its group's root
    for group, span in plan.known_ranges.items():
        known.setdefault(plan.find(group), []).append(span)
    entries = {}
    for root in roots:
        parts = [stats[v] for v in observed.get(root, []) if v in stats]
        merged = Statistics(parts[0].bins) if parts else Statistics()
        for part in parts:
            merged.merge(part)
        low, high = choose(merged, method, bits=bits) if merged.count else (0.0, 0.0)
        for known_low, known_high in known.get(root, ()):
            low, high = min(low, known_low), max(high, known_high)
        scale, zero = scale_zero_point(low, high, bits, symmetric=False, signed=False)
        entries[root] = activation_entry(scale, zero, bits)
    return entries


def build_report(reference: ModuleOp, module: ModuleOp, batches, options: Quantize, method: str, layers,
                 floats, corrected: int) -> dict:
    from nnefopt.quant.report import sqnr_by_name

    names = tensor_names(module)
    graph = graph_of(module)
    outputs = [names[v] for v in graph.body.block.last_op.operands]
    rows = []
    for op in graph.body.block.ops:
        if not op.results or op.results[0] not in names or quantization_of(op.results[0]) is None:
            continue
        if op.name in ("nnef.variable",) or not hasattr(op, "OP_DEF"):
            continue
        entry = quantization_of(op.results[0]).params()
        row = {"tensor": names[op.results[0]], "operation": op.OP_DEF.name, "int8": True,
               "scale": entry["scale"], "zero_point": entry["zero_point"]}
        if _clipped_by_its_activation(op.results[0]):
            row["clipped"] = True  # its relu/clamp's row says its error (against fp32 it includes the clipping)
        rows.append(row)
    rows += [{"tensor": tensor, "operation": kind, "int8": False, "reason": reason} for tensor, kind, reason in floats]
    sqnr = sqnr_by_name(reference, module, batches, [r["tensor"] for r in rows] + outputs)
    for row in rows:
        row["sqnr_db"] = None if row.get("clipped") else sqnr.get(row["tensor"])
    by_name = {layer.name: layer for layer in layers}
    for row in rows:
        layer = by_name.get(row["tensor"])
        if layer is not None:
            row["per_channel"] = layer.per_channel
            row["filter_scale_raised_for_bias"] = layer.raised
    return {"method": method, "weights": "per-channel" if options.per_channel else "per-tensor",
            "profile": options.profile, "bits": options.bits, "batches": len(batches),
            "calibration": options.calib or "seeded standard-normal inputs",
            "equalize": options.equalize, "bias_correction": options.bias_correction, "biases_corrected": corrected,
            "layers": rows, "float": [r["tensor"] for r in rows if not r["int8"]],
            "outputs": {name: sqnr.get(name, float("nan")) for name in outputs}}


def _clipped_by_its_activation(value) -> bool:
    """Whether only a relu/clamp sharing its entry reads `value` (the int8 value is the
    clipped one: comparing it with the unclipped float value says nothing)."""
    from nnefopt.traits import Clipping

    uses = list(value.uses)
    return bool(uses) and all(use.operation.has_trait(Clipping) and quantization_of(use.operation.results[0])
                              == quantization_of(value) for use in uses)
