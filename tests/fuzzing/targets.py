"""The readers under fuzzing. Each target makes inputs from the corpus (`generate`) and
runs one (`run`, in the forked child): the reader, then for an accepted model the
default pipeline and the round-trip oracle."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from tests.fuzzing import grammar
from tests.fuzzing.isolate import Refused, RoundTripFailure
from tests.fuzzing.mutate import mutate_bytes, mutate_text

SHARED = Path(__file__).resolve().parents[3] / "shared" / "models"
# Folder models that load in tens of milliseconds: thousands of inputs a minute.
SMALL_MODELS = ["cnn_digits/kt", "cnn_digits/t2n", "mlp_digits/kt", "mlp_digits/t2n", "cnn_digits_q8/tract.nnef.tgz"]
MORE_MODELS = ["resnet8/kt", "tiny_unet/t2n", "tiny_vit/kt", "tiny_vit/t2n", "resnet8/t2n", "tiny_unet/kt"]


class Corpus:
    """The seed files, unpacked once into `root` before any child is forked (so every
    child shares them, and the modules the pipeline target starts from, copy-on-write)."""

    def __init__(self, root: Path, models: list[str] | None = None):
        import nnefopt

        self.root = root
        self.folders: dict[str, Path] = {}
        for name in models or SMALL_MODELS:
            source = SHARED / name
            folder = root / "seeds" / name.replace("/", "_")
            if source.is_dir():
                shutil.copytree(source, folder, dirs_exist_ok=True)
            else:
                folder.mkdir(parents=True, exist_ok=True)
                with tarfile.open(source) as tar:
                    tar.extractall(folder, filter="data")
            self.folders[folder.name] = folder
        self.names = sorted(self.folders)
        self.graph_texts = {n: (f / "graph.nnef").read_text() for n, f in self.folders.items()}
        self.quant_texts = {n: (f / "graph.quant").read_text() for n, f in self.folders.items()
                            if (f / "graph.quant").exists()}
        self.dat_files = {n: sorted(f.glob("*.dat")) for n, f in self.folders.items()}
        self.tars = {n: _tar_bytes(f) for n, f in self.folders.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.modules = {n: nnefopt.load(f) for n, f in self.folders.items()}
            # Locations name the seed files without the temporary root: an input replays
            # from (seed, index) alone.
            self.mlir_texts = {n: nnefopt.to_mlir(m, weights=True).replace(str(root), "")
                               for n, m in self.modules.items()}
            self.generic_texts = {n: nnefopt.to_mlir(m, weights=True, generic=True).replace(str(root), "")
                                  for n, m in self.modules.items()}
            self.tensor_names = {n: [name for name in _names(t)] for n, t in self.graph_texts.items()}
        self.rule_texts = _rule_chunks(STANDARD_RULES.read_text())
        self.arrays = _array_seeds(models or SMALL_MODELS)


# The standard rule file, cut into its rules: an input is one to three of them (each
# rule the rewrite pass uses is verified first, in about a tenth of a second).
STANDARD_RULES = Path(__file__).resolve().parents[2] / "nnefopt" / "rules" / "standard.nnef"


def _rule_chunks(text: str) -> list[str]:
    chunks = ("\n" + text).split("\nrule ")[1:]
    return ["rule " + chunk.split("\n\n")[0] + "\n" for chunk in chunks]


def _array_seeds(models: list[str]) -> dict[str, bytes]:
    """`.npy` files of the seed models' inputs, by model folder name: `input.npy`, and 16
    samples of `calib.npy` as a calibration set."""
    import numpy as np

    seeds = {}
    for name in models:
        model = SHARED / name.split("/")[0]
        key = name.replace("/", "_")
        if (model / "input.npy").exists():
            seeds[f"{key}/input"] = (model / "input.npy").read_bytes()
        if (model / "calib.npy").exists():
            buffer = io.BytesIO()
            np.save(buffer, np.load(model / "calib.npy")[:16])
            seeds[f"{key}/calib"] = buffer.getvalue()
    return seeds


def _names(text: str) -> list[str]:
    return [line.split("=")[0].strip() for line in text.splitlines() if " = " in line and "(" in line][:50]


def _tar_bytes(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(folder.iterdir()):
            if path.suffix in (".nnef", ".quant", ".dat"):
                tar.add(path, arcname=path.name)
    return buffer.getvalue()


# ---- the oracle -------------------------------------------------------------------


# The campaign (FULL_ORACLE) checks every format on every accepted input: MLIR custom and
# generic, and the NNEF fixed point. The test suite's short run, to try thousands of inputs
# in a minute, checks one NNEF write and read on each, and the custom MLIR format on what
# was read from MLIR.
FULL_ORACLE = True


def round_trip(module, work: Path, *, from_mlir: bool = False) -> None:
    """Optimize with the default pipeline; then what nnefopt writes must read back to the
    same module: MLIR text (custom and generic, with weights) exactly, and an NNEF folder
    at its fixed point (written, read, written, read: the two reads print alike)."""
    import nnefopt
    from nnefopt.errors import NNEFError

    nnefopt.optimize(module, "default")
    mlir_forms = (False, True) if FULL_ORACLE else (False,) if from_mlir else ()
    for generic in mlir_forms:
        text = nnefopt.to_mlir(module, weights=True, generic=generic)
        try:
            again = nnefopt.to_mlir(nnefopt.parse_mlir(text, "rt.mlir"), weights=True, generic=generic)
        except NNEFError as exc:
            raise RoundTripFailure(f"MLIR written (generic={generic}) does not read back: {exc}") from None
        if again != text:
            raise RoundTripFailure(f"MLIR (generic={generic}) read back differs:\n{_first_difference(text, again)}")
    nnefopt.save(module, work / "rt1")  # may refuse (a weight without data): refused, not a failure
    texts = []
    for step in ("rt1", "rt2"):
        try:
            loaded = nnefopt.load(work / step)
        except NNEFError as exc:
            raise RoundTripFailure(f"NNEF written does not read back: {exc}") from None
        texts.append(nnefopt.to_mlir(loaded, weights=True).replace(str(work / step), "<out>"))
        if step == "rt1" and not FULL_ORACLE:
            return
        if step == "rt1":
            try:
                nnefopt.save(loaded, work / "rt2")
            except NNEFError as exc:
                raise RoundTripFailure(f"NNEF read back cannot be written again: {exc}") from None
    if texts[0] != texts[1]:
        raise RoundTripFailure(f"NNEF written twice differs:\n{_first_difference(*texts)}")


def _first_difference(a: str, b: str) -> str:
    for x, y in zip(a.splitlines(), b.splitlines()):
        if x != y:
            return f"- {x[:1500]}\n+ {y[:1500]}"
    return f"lengths {len(a)} and {len(b)}"


def _quiet() -> None:
    """Warnings off, and what passes print (quantize's table) dropped: the child is forked
    for one input and exits after it, so nothing is restored."""
    warnings.catch_warnings().__enter__()
    warnings.simplefilter("ignore")
    contextlib.redirect_stderr(io.StringIO()).__enter__()


# ---- targets ----------------------------------------------------------------------


@dataclass
class Target:
    name: str
    generate: object  # (corpus, rng) -> (base, data: bytes)
    run: object  # (corpus, base, data, work) -> None


def _model_folder(corpus: Corpus, base: str, work: Path, skip: str = "") -> Path:
    """A copy of the seed model's folder (links to its files), without `skip`."""
    folder = work / "model"
    folder.mkdir()
    for path in corpus.folders[base].iterdir():
        if path.name != skip and path.suffix in (".dat", ".quant", ".nnef"):
            os.symlink(path, folder / path.name)
    return folder


def _load_and_check(path: Path, work: Path) -> None:
    import nnefopt

    _quiet()
    round_trip(nnefopt.load(path), work)


def gen_graph(corpus: Corpus, rng: random.Random):
    if rng.random() < 0.4:
        return "", grammar.nnef_text(rng).encode()
    base = rng.choice(corpus.names)
    return base, mutate_text(corpus.graph_texts[base], rng).encode("utf-8", "surrogatepass")


def run_graph(corpus: Corpus, base: str, data: bytes, work: Path) -> None:
    folder = _model_folder(corpus, base, work, skip="graph.nnef") if base else (work / "model")
    folder.mkdir(exist_ok=True)
    (folder / "graph.nnef").write_bytes(data)
    _load_and_check(folder, work)


def gen_quant(corpus: Corpus, rng: random.Random):
    base = rng.choice(sorted(corpus.quant_texts) or corpus.names)
    if rng.random() < 0.4 or base not in corpus.quant_texts:
        return base, grammar.quant_text(rng, corpus.tensor_names[base]).encode()
    return base, mutate_text(corpus.quant_texts[base], rng).encode("utf-8", "surrogatepass")


def run_quant(corpus: Corpus, base: str, data: bytes, work: Path) -> None:
    folder = _model_folder(corpus, base, work, skip="graph.quant")
    (folder / "graph.quant").write_bytes(data)
    _load_and_check(folder, work)


def gen_dat(corpus: Corpus, rng: random.Random):
    base = rng.choice(corpus.names)
    file = rng.choice(corpus.dat_files[base])
    data = file.read_bytes()
    if rng.random() < 0.7:  # the header mostly: the payload is seldom interpreted
        data = mutate_bytes(data[:128], rng) + data[128:]
    else:
        data = mutate_bytes(data, rng)
    return f"{base}/{file.name}", data


def run_dat(corpus: Corpus, base: str, data: bytes, work: Path) -> None:
    model, file = base.split("/")
    folder = _model_folder(corpus, model, work, skip=file)
    (folder / file).write_bytes(data)
    _load_and_check(folder, work)


def gen_archive(corpus: Corpus, rng: random.Random):
    import gzip

    base = rng.choice(corpus.names)
    data = corpus.tars[base]
    if rng.random() < 0.5:  # tar headers: the first 512 bytes of each member
        offset = 512 * rng.randrange(max(1, len(data) // 512))
        data = data[:offset] + mutate_bytes(data[offset:offset + 512], rng) + data[offset + 512:]
    else:
        data = mutate_bytes(data, rng)
    if rng.random() < 0.5:
        return base + ".tar", data
    packed = gzip.compress(data, compresslevel=1, mtime=0)
    return base + ".tgz", mutate_bytes(packed, rng, 1) if rng.random() < 0.2 else packed


def run_archive(corpus: Corpus, base: str, data: bytes, work: Path) -> None:
    path = work / ("model" + Path(base).suffix)
    path.write_bytes(data)
    _load_and_check(path, work)


def gen_mlir(corpus: Corpus, rng: random.Random):
    base = rng.choice(corpus.names)
    texts = corpus.generic_texts if rng.random() < 0.4 else corpus.mlir_texts
    text = texts[base]
    if rng.random() < 0.5:  # the graph, without the long weights section
        cut = text.find("{-#")
        head = mutate_text(text[:cut], rng)
        text = head + text[cut:]
    else:
        text = mutate_text(text, rng)
    return base, text.encode("utf-8", "surrogatepass")


def run_mlir(corpus: Corpus, base: str, data: bytes, work: Path) -> None:
    import nnefopt

    _quiet()
    round_trip(nnefopt.parse_mlir(data.decode("utf-8", "replace"), "fuzz.mlir"), work, from_mlir=True)


def gen_pipeline(corpus: Corpus, rng: random.Random):
    return rng.choice(corpus.names), grammar.pipeline_text(rng).encode("utf-8", "surrogatepass")


def run_pipeline(corpus: Corpus, base: str, data: bytes, work: Path) -> None:
    import nnefopt

    _quiet()
    module = corpus.modules[base].clone()  # the seed stays as read for the next input
    nnefopt.optimize(module, data.decode("utf-8", "replace"))
    round_trip(module, work)


def gen_cli(corpus: Corpus, rng: random.Random):
    """The command line: a mutated graph (folder) or MLIR file, a pipeline, an output."""
    kind = rng.choice(["nnef", "mlir"])
    base, model = (gen_graph if kind == "nnef" else gen_mlir)(corpus, rng)
    pipeline = grammar.pipeline_text(rng) if rng.random() < 0.5 else "default"
    output = rng.choice(["out", "out.tgz", "out.mlir"])
    return base, json.dumps({"kind": kind, "model": model.decode("utf-8", "replace"), "pipeline": pipeline,
                             "output": output}).encode()


def run_cli(corpus: Corpus, base: str, data: bytes, work: Path) -> None:
    """The contract of nnef-opt: exit 0 with the output and nothing else written, or exit
    1 with one `...: error: ...` line, no traceback, and nothing written."""
    from nnefopt.cli import main

    spec = json.loads(data)
    if spec["kind"] == "nnef":
        model = _model_folder(corpus, base, work, skip="graph.nnef") if base else work / "model"
        model.mkdir(exist_ok=True)
        (model / "graph.nnef").write_text(spec["model"], encoding="utf-8")
    else:
        model = work / "model.mlir"
        model.write_text(spec["model"], encoding="utf-8")
    output = work / "outputs" / spec["output"]
    output.parent.mkdir()
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        status = main([str(model), "-q", "-p", spec["pipeline"], "-o", str(output)])
    lines = stderr.getvalue().splitlines()
    left = sorted(p.name for p in output.parent.iterdir())
    if status == 0:
        if left != [output.name]:
            raise AssertionError(f"exit 0 but the output folder holds {left}")
        return
    errors = [line for line in lines if ": error: " in line or line.startswith("error: ")]
    if status != 1 or len(errors) != 1 or len(lines) != 1 or "Traceback" in stderr.getvalue():
        raise AssertionError(f"exit {status}, stderr:\n{stderr.getvalue()[:3000]}")
    if left:
        raise AssertionError(f"exit 1 but output left behind: {left}")
    raise Refused(errors[0])


def gen_rules(corpus: Corpus, rng: random.Random):
    """A rule file: rules of the standard set or of the grammar, mutated, applied to a
    seed model by the rewrite pass."""
    parts = [rng.choice(corpus.rule_texts) if rng.random() < 0.6 else grammar.rule_text(rng)
             for _ in range(rng.randrange(1, 4))]
    text = "\n".join(parts)
    if rng.random() < 0.7:
        text = mutate_text(text, rng)
    return rng.choice(corpus.names), text.encode("utf-8", "surrogatepass")


def run_rules(corpus: Corpus, base: str, data: bytes, work: Path) -> None:
    import nnefopt

    _quiet()
    path = work / "fuzz.rules"
    path.write_bytes(data)
    module = corpus.modules[base].clone()
    nnefopt.optimize(module, f"rewrite{{rules={path}}}")
    round_trip(module, work)


def gen_npy(corpus: Corpus, rng: random.Random):
    """An `.npy` array, mutated: the model's inputs (`nnef-run --input`) or its
    calibration set (`quantize{calib=...}`)."""
    base = rng.choice(sorted(corpus.arrays))
    data = corpus.arrays[base]
    if rng.random() < 0.7:  # the header mostly: it says the shape, the dtype and the order
        data = mutate_bytes(data[:128], rng) + data[128:]
    else:
        data = mutate_bytes(data, rng)
    return base, data


def run_npy(corpus: Corpus, base: str, data: bytes, work: Path) -> None:
    import nnefopt
    from nnefopt.interp.ir_interpreter import Plan
    from nnefopt.run_cli import read_inputs

    _quiet()
    model, use = base.split("/")
    path = work / "array.npy"
    path.write_bytes(data)
    module = corpus.modules[model].clone()
    if use == "calib":
        nnefopt.optimize(module, f"quantize{{calib={path} samples=16}}")
        round_trip(module, work)
    else:  # as nnef-run reads and runs it
        plan = Plan(module)
        plan.run(read_inputs([str(path)], list(plan.inputs)), [])


TARGETS = {t.name: t for t in [
    Target("graph.nnef", gen_graph, run_graph),
    Target("graph.quant", gen_quant, run_quant),
    Target("dat", gen_dat, run_dat),
    Target("archive", gen_archive, run_archive),
    Target("mlir", gen_mlir, run_mlir),
    Target("pipeline", gen_pipeline, run_pipeline),
    Target("cli", gen_cli, run_cli),
    Target("rules", gen_rules, run_rules),
    Target("npy", gen_npy, run_npy),
]}
