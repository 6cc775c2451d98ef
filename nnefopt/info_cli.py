"""nnef-info: a model's facts (inputs, outputs, operations, weights, work, memory, what
engines cannot take) as a table for people or JSON for tools."""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from nnefopt.errors import NNEFError, NNEFWarning


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnef-info", description="Facts about an NNEF model.")
    parser.add_argument("model", help="NNEF folder, graph.nnef, .tgz archive, .mlir, .onnx or .tflite file")
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")
    parser.add_argument("--per-op", action="store_true", help="list MACs and FLOPs of every operation")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        try:
            from nnefopt.api import load
            from nnefopt.info import info

            facts = info(load(args.model))
        except NNEFError as error:
            print(error, file=sys.stderr)
            return 1
    try:
        print(json.dumps(facts, indent=2) if args.json else format_info(facts, args.per_op))
    except BrokenPipeError:
        sys.stderr.close()
    return 0


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _tensors(rows: list[dict]) -> list[str]:
    return [f"  {t['name']}: {t['dtype']}[{', '.join(str(d) for d in t['shape'] or [])}]" for t in rows]


def format_info(facts: dict, per_op: bool = False) -> str:
    lines = [f"graph {facts['graph']}", "inputs:", *_tensors(facts["inputs"]), "outputs:", *_tensors(facts["outputs"])]
    compute = facts["compute"]
    lines.append(f"operations: {sum(facts['operations'].values())}")
    lines.append(f"  {'operation':<28} {'count':>6} {'MACs':>16} {'FLOPs':>16}")
    for kind, row in sorted(compute["per_kind"].items(), key=lambda item: -item[1]["count"]):
        lines.append(f"  {kind:<28} {row['count']:>6} {_count(row['macs']):>16} {_count(row['flops']):>16}")
    lines.append(f"  {'total':<28} {'':>6} {_count(compute['macs']):>16} {_count(compute['flops']):>16}")
    if per_op:
        lines.append("per operation:")
        lines += [f"  {row['op']:<20} {str(row['output']):<32} {_count(row['macs']):>14} {_count(row['flops']):>14}"
                  for row in compute["per_op"]]
    params = facts["parameters"]
    lines.append(f"parameters: {_count(params['count'])} ({_count(params['bytes'])} bytes)")
    lines += [f"  {dtype}: {_count(row['count'])} ({_count(row['bytes'])} bytes)" for dtype, row in params["by_dtype"].items()]
    memory = facts["memory"]
    if memory["peak_activation_bytes"] is None:
        lines.append(f"peak activation memory: unknown ({memory['note']})")
    else:
        lines.append(f"peak activation memory: {_count(memory['peak_activation_bytes'])} bytes under the static plan "
                     f"({_count(memory['unplanned_activation_bytes'])} without reuse, {memory['tensors']} tensors)")
    lines.append(f"extensions: {', '.join(facts['extensions']) or 'none'}")
    lines.append(f"model fragments: {', '.join(facts['fragments']) or 'none'}")
    lines.append(f"non-standard operations: {', '.join(facts['nonstandard_operations']) or 'none'}")
    lines.append("what engines cannot take (of the NNEF nnefopt writes):")
    for engine, label in (("khronos", "Khronos parser"), ("tract", "tract"), ("c", "C emitter")):
        missing = facts["unsupported"][engine]
        text = missing if isinstance(missing, str) else ", ".join(missing) or "nothing"
        lines.append(f"  {label}: {text}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
