"""Load time of nnefopt (text + weights + shapes) against the Khronos parser
(`nnef.load_graph` + `infer_shapes`), on the shared models and a generated
ResNet-50-size model, with the ratio nnefopt / Khronos; and nnefopt's export time
(load, import into the IR, export, write the folder).

    python bench/bench_load.py [--repeat N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import nnef

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.generate import conv_chain, resnet50  # noqa: E402
from nnefopt.frontend.loader import load_model  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"


def best_time(load, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        load()
        best = min(best, time.perf_counter() - start)
    return best


def khronos(path: Path) -> None:
    graph = nnef.load_graph(str(path))
    nnef.infer_shapes(graph)


def nnefopt_load(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_model(path)
    for tensor in model.tensors.values():  # touch the weights: memory-mapping is not reading
        if tensor.data is not None:
            tensor.data.sum()


def nnefopt_export(path: Path, out: Path) -> None:
    """Through the IR and back to a folder, as nnef-opt MODEL -o OUT does."""
    from nnefopt.api import load, save

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save(load(path), out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        big = Path(scratch) / "resnet50"
        parameters = resnet50(big)
        models = [(f"{d.parent.name}/kt", d) for d in sorted(SHARED.glob("*/kt")) if d.parent.name != "tiny_vit"]
        models.append((f"resnet50-generated ({parameters / 1e6:.1f} M parameters)", big))
        print(f"{'model':<44} {'load ms':>9} {'khronos ms':>11} {'ratio':>7} {'export ms':>10}")
        for name, path in models:
            ours = best_time(lambda: nnefopt_load(path), args.repeat)
            theirs = best_time(lambda: khronos(path), args.repeat)
            exported = best_time(lambda: nnefopt_export(path, Path(scratch) / "out"), args.repeat)
            rows.append(ours / theirs)
            print(f"{name:<44} {ours * 1e3:>9.1f} {theirs * 1e3:>11.1f} {ours / theirs:>7.2f} {exported * 1e3:>10.1f}")
        print(f"worst load ratio {max(rows):.2f} (goal <= 1.0); export = load + import + export + write")
        growth = []
        for blocks in (1_000, 10_000):
            folder = Path(scratch) / f"chain{blocks}"
            ops = conv_chain(folder, blocks)
            load_time = best_time(lambda: nnefopt_load(folder), 1)
            export_time = best_time(lambda: nnefopt_export(folder, Path(scratch) / "chain_out"), 1)
            growth.append((load_time, export_time))
            print(f"{f'conv chain, {ops} operations':<44} {load_time * 1e3:>9.1f} {'':>11} {'':>7} {export_time * 1e3:>10.1f}")
        (small_load, small_export), (big_load, big_export) = growth
        print(f"10x operations: load x{big_load / small_load:.1f}, export x{big_export / small_export:.1f} (linear: about 10)")


if __name__ == "__main__":
    main()
