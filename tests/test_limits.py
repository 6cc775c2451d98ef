"""Scale limits, each handled by design (issue 12, item 4): what works at size, what is
refused and how. The 100,000-operation graph is bench/bench_scale.py's."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import nnefopt
from nnefopt.errors import NNEFError
from nnefopt.frontend.bundle import MAX_FILE_NAME
from nnefopt.frontend.tensor_file import HEADER_SIZE, TensorHeader, _pack_header, write_tensor

ROOT = Path(__file__).resolve().parents[1]
HUGE = 1 << 31  # elements
MiB = 1 << 20


def write_model(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "graph.nnef").write_text(textwrap.dedent(text))
    return folder


def sparse_tensor_file(path: Path, shape: tuple[int, ...], bits: int = 32, item_type: int = 0,
                       payload: int | None = None) -> int:
    """A tensor file whose header declares `shape`, its data a hole of `payload` bytes
    (default: all the header says): made without writing the data. Returns the size."""
    count = int(np.prod(shape, dtype=object))
    header = TensorHeader((1, 0), shape, bits, item_type, min(count * bits // 8, 0xFFFFFFFF))
    size = HEADER_SIZE + (count * bits // 8 if payload is None else payload)
    with open(path, "wb") as file:
        file.write(_pack_header(header))
        file.truncate(size)
    return size


def in_fresh_process(code: str) -> dict:
    """Run `code` (which sets `result`, a dict) in a new interpreter; the result with
    `grown`: how far the peak resident size rose above its size once nnefopt was
    imported, in bytes."""
    script = textwrap.dedent("""
        import json, resource, warnings
        import numpy as np
        import nnefopt
        from nnefopt.errors import NNEFError
        warnings.simplefilter("ignore")
        def peak():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        before = peak()
        result = {}
    """) + textwrap.dedent(code) + "\nresult['grown'] = peak() - before\nprint(json.dumps(result))\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


# ---- 10,000 inputs and outputs --------------------------------------------------------


def test_ten_thousand_inputs_and_outputs_load_run_and_export(tmp_path):
    count = 10_000
    inputs, outputs = [f"x{i}" for i in range(count)], [f"y{i}" for i in range(count)]
    body = "\n".join(f"    x{i} = external<scalar>(shape = [1]);" for i in range(count))
    ratios = ", ".join(["1"] * count)
    model = write_model(tmp_path / "wide", f"""\
        version 1.0;
        graph G( {', '.join(inputs)} ) -> ( {', '.join(outputs)} )
        {{
        {body}
            c = concat([{', '.join(inputs)}], axis = 0);
            [{', '.join(outputs)}] = split(c, axis = 0, ratios = [{ratios}]);
        }}
        """)
    module = nnefopt.load(model)
    feed = {name: np.full((1,), i, np.float32) for i, name in enumerate(inputs)}
    results = nnefopt.run(module, feed)
    assert [float(results[name][0]) for name in outputs] == list(range(count))
    nnefopt.save(module, tmp_path / "out")
    written = (tmp_path / "out" / "graph.nnef").read_text()
    assert f"graph G( {', '.join(inputs)} ) -> ( {', '.join(outputs)} )" in written


# ---- 2^31 elements declared, not read -------------------------------------------------


@pytest.mark.parametrize("declaration", [
    f"c = constant<scalar>(shape = [{HUGE}], value = [1.0]);",
    f"c = pad(x, padding = [(0, {HUGE - 1})]);",
    f"c = external<scalar>(shape = [{HUGE}]);",
], ids=["constant", "pad", "external"])
def test_a_tensor_of_two_to_the_31_that_nothing_reads_costs_nothing(tmp_path, declaration):
    # Loading keeps a one-value constant as a broadcast view, shapes are numbers, and
    # nothing computes a tensor nothing reads: 8 GiB declared, no allocation.
    inputs = "x, c" if "external" in declaration else "x"
    model = write_model(tmp_path / "m", f"""\
        version 1.0;
        graph G( {inputs} ) -> ( y )
        {{
            x = external<scalar>(shape = [1]);
            {declaration}
            y = add(x, 1.0);
        }}
        """)
    result = in_fresh_process(f"""
        module = nnefopt.load({str(model)!r})
        result['declared'] = [list(op.results[0].type.get_shape()) for op in module.ops.first.body.walk()
                              if op.results and op.results[0].type.get_shape() == ({HUGE},)]
        nnefopt.optimize(module, "default")
        if {inputs == "x"}:  # an input of 8 GiB cannot be fed: that graph is not run
            result['y'] = nnefopt.run(module, {{"x": np.ones(1, np.float32)}})["y"].tolist()
        nnefopt.save(module, {str(tmp_path / "out")!r})
        result['saved'] = __import__("os").path.isfile({str(tmp_path / "out" / "graph.nnef")!r})
    """)
    assert result["declared"] == [[HUGE]]
    assert result["saved"]
    assert result.get("y", [2.0]) == [2.0]
    assert result["grown"] < 200 * MiB, result


def huge_variable_model(folder, dtype: str):
    """A graph that declares a variable of 2^31 items, which nothing reads."""
    return write_model(folder, f"""\
        version 1.0;
        graph G( x ) -> ( y )
        {{
            x = external<scalar>(shape = [1]);
            w = variable<{dtype}>(shape = [{HUGE}], label = 'w');
            y = add(x, 1.0);
        }}
        """)


def test_a_variable_of_two_to_the_31_with_its_data_missing_is_refused_by_file_and_field(tmp_path):
    model = huge_variable_model(tmp_path / "m", "scalar")
    sparse_tensor_file(model / "w.dat", (HUGE,), payload=1000)
    with pytest.raises(NNEFError) as caught:
        nnefopt.load(model)
    message = str(caught.value)
    assert str(model / "w.dat") in message and "data_length" in message
    assert f"header claims {HUGE} items ({HUGE * 4} bytes) but the file holds 1000 bytes" in message


def test_a_variable_of_two_to_the_31_bytes_is_mapped_not_read(tmp_path):
    model = huge_variable_model(tmp_path / "m", "integer")
    sparse_tensor_file(model / "w.dat", (HUGE,), bits=8, item_type=4)  # 2 GiB of signed bytes
    result = in_fresh_process(f"""
        from nnefopt.dialects.weights import weight_of
        module = nnefopt.load({str(model)!r})
        data = next(weight_of(op.attributes["nnef.data"]) for op in module.walk() if "nnef.data" in op.attributes)
        result['shape'], buffer = list(data.shape), data
        while isinstance(buffer, np.ndarray) and buffer.base is not None:
            buffer = buffer.base  # through the views, to the buffer under them
        buffer = buffer.obj if isinstance(buffer, memoryview) else buffer
        result['mapped'] = type(buffer).__name__
        result['y'] = nnefopt.run(module, {{"x": np.ones(1, np.float32)}})["y"].tolist()
    """)
    assert result["shape"] == [HUGE] and result["mapped"] == "mmap"
    assert result["y"] == [2.0]
    assert result["grown"] < 200 * MiB, result


# ---- names of 10,000 characters -------------------------------------------------------


def test_names_of_ten_thousand_characters_go_through(tmp_path):
    long = 10_000
    x, y, fragment, note = "x" * long, "y" * long, "f" * long, "n" * long
    label = "w" * (MAX_FILE_NAME - len(".dat"))  # the longest a file system takes
    model = write_model(tmp_path / "m", f"""\
        version 1.0;
        extension KHR_enable_fragment_definitions;
        fragment {fragment}( input: tensor<scalar>, note: string ) -> ( output: tensor<scalar> )
        {{
            output = relu(input);
        }}
        graph G( {x} ) -> ( {y} )
        {{
            {x} = external<scalar>(shape = [2]);
            w = variable<scalar>(shape = [2], label = '{label}');
            {y} = {fragment}(add({x}, w), note = '{note}');
        }}
        """)
    write_tensor(model / f"{label}.dat", np.array([1.0, -5.0], np.float32))
    feed = {x: np.array([1.0, 2.0], np.float32)}
    module = nnefopt.load(model)
    assert nnefopt.run(module, feed)[y].tolist() == [2.0, 0.0]
    text = nnefopt.to_mlir(module, weights=True)
    assert fragment in text and note in text
    assert nnefopt.run(nnefopt.parse_mlir(text), feed)[y].tolist() == [2.0, 0.0]
    nnefopt.save(module, tmp_path / "out")
    assert (tmp_path / "out" / f"{label}.dat").is_file()
    assert note in (tmp_path / "out" / "graph.nnef").read_text()
    assert nnefopt.run(nnefopt.load(tmp_path / "out"), feed)[y].tolist() == [2.0, 0.0]
    nnefopt.optimize(module, "default")
    assert nnefopt.run(module, feed)[y].tolist() == [2.0, 0.0]


def test_a_label_too_long_for_a_file_name_is_refused_on_load_and_on_export(tmp_path):
    label = "w" * 10_000
    model = write_model(tmp_path / "m", f"""\
        version 1.0;
        graph G( x ) -> ( y )
        {{
            x = external<scalar>(shape = [1]);
            w = variable<scalar>(shape = [1], label = '{label}');
            y = add(x, w);
        }}
        """)
    with pytest.raises(NNEFError) as caught:
        nnefopt.load(model)
    expected = f"(10000 characters) makes a file name of 10004 bytes; file systems allow at most {MAX_FILE_NAME}"
    assert expected in str(caught.value) and len(str(caught.value)) < 400
    # MLIR text names no file: it loads, and writing it as NNEF is what is refused
    short = write_model(tmp_path / "short", (model / "graph.nnef").read_text().replace(label, "w"))
    write_tensor(short / "w.dat", np.array([3.0], np.float32))
    text = nnefopt.to_mlir(nnefopt.load(short), weights=True).replace('label = "w"', f'label = "{label}"')
    module = nnefopt.parse_mlir(text)
    with pytest.raises(NNEFError) as caught:
        nnefopt.save(module, tmp_path / "out")
    assert expected in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_weights_made_from_long_names_get_labels_a_file_system_takes(tmp_path):
    name = "t" * 10_000
    model = write_model(tmp_path / "m", f"""\
        version 1.0;
        graph G( x ) -> ( y )
        {{
            x = external<scalar>(shape = [2]);
            {name} = constant<scalar>(shape = [2], value = [1.0, 2.0]);
            y = add(x, {name});
        }}
        """)
    module = nnefopt.load(model)
    nnefopt.save(module, tmp_path / "out")  # the constant is written as a variable
    (weight,) = (tmp_path / "out").glob("*.dat")
    assert len(weight.name) <= MAX_FILE_NAME and weight.name.startswith("t")
    assert nnefopt.run(nnefopt.load(tmp_path / "out"), {"x": np.zeros(2, np.float32)})["y"].tolist() == [1.0, 2.0]


# ---- a 1 GB .dat file -----------------------------------------------------------------


def test_a_one_gigabyte_weight_is_mapped_and_copied_without_being_read(tmp_path):
    model = write_model(tmp_path / "m", f"""\
        version 1.0;
        graph G( x ) -> ( y )
        {{
            x = external<scalar>(shape = [1]);
            w = variable<scalar>(shape = [{1 << 28}], label = 'w');
            s = slice(w, axes = [0], begin = [0], end = [1]);
            y = add(x, s);
        }}
        """)
    size = sparse_tensor_file(model / "w.dat", (1 << 28,))  # 1 GiB of zeros, a hole on disk
    result = in_fresh_process(f"""
        module = nnefopt.load({str(model)!r})
        result['y'] = nnefopt.run(module, {{"x": np.ones(1, np.float32)}})["y"].tolist()
        nnefopt.save(module, {str(tmp_path / "out")!r})
    """)
    assert result["y"] == [1.0]
    assert result["grown"] < 200 * MiB, result  # neither loading, running a slice nor the copy read 1 GiB
    copied = tmp_path / "out" / "w.dat"
    assert copied.stat().st_size == size
    with open(copied, "rb") as file, open(model / "w.dat", "rb") as source:
        assert file.read(HEADER_SIZE + 4096) == source.read(HEADER_SIZE + 4096)


def test_a_one_gigabyte_header_over_a_short_file_names_the_file_and_field(tmp_path):
    model = write_model(tmp_path / "m", f"""\
        version 1.0;
        graph G( x ) -> ( y )
        {{
            x = external<scalar>(shape = [1]);
            w = variable<scalar>(shape = [{1 << 28}], label = 'w');
            y = add(x, 1.0);
        }}
        """)
    sparse_tensor_file(model / "w.dat", (1 << 28,), payload=(1 << 30) - 4)  # one float short
    with pytest.raises(NNEFError) as caught:
        nnefopt.load(model)
    message = str(caught.value)
    assert message == (f"{model / 'w.dat'}: data_length: error: header claims {1 << 28} items "
                       f"({1 << 30} bytes) but the file holds {(1 << 30) - 4} bytes")


def test_a_constant_of_two_to_the_31_that_an_operation_reads_is_optimized_and_exported_small(tmp_path):
    # The one value stays one value: a broadcast view when passes read it, a result of
    # 2^31 items stays an operation (fold-constants' bound), and the export spells the
    # constant as a one-item weight tiled, not as a file of 2^31 copies.
    model = write_model(tmp_path / "m", f"""\
        version 1.0;
        graph G( x ) -> ( y, z )
        {{
            x = external<scalar>(shape = [1]);
            c = constant<scalar>(shape = [{HUGE}], value = [1.0]);
            y = add(x, c);
            z = reshape(c, shape = [2, {HUGE // 2}]);
        }}
        """)
    out = tmp_path / "out"
    result = in_fresh_process(f"""
        module = nnefopt.optimize(nnefopt.load({str(model)!r}), "default")
        nnefopt.save(module, {str(out)!r})
        again = nnefopt.load({str(out)!r})
        result['outputs'] = [list(v.type.get_shape()) for v in again.ops.first.body.block.last_op.operands]
        result['mlir'] = nnefopt.to_mlir(nnefopt.optimize(again, "default"))
    """)
    assert result["grown"] < 200 * MiB, result
    assert result["outputs"] == [[HUGE], [2, HUGE // 2]]
    assert sum(f.stat().st_size for f in out.iterdir()) < 4096
    assert "tile<scalar>(" in (out / "graph.nnef").read_text()


@pytest.mark.parametrize(("repeats", "folded"), [(10, True), (100_000, False)])
def test_fold_constants_folds_a_tile_only_while_it_stays_near_its_operands_size(tmp_path, repeats, folded):
    model = write_model(tmp_path / "m", f"""\
        version 1.0;
        graph G( x ) -> ( y )
        {{
            x = external<scalar>(shape = [1]);
            c = constant<scalar>(shape = [2], value = [1.0, 2.0]);
            y = add(x, tile(c, repeats = [{repeats}]));
        }}
        """)
    module = nnefopt.optimize(nnefopt.load(model), "fold-constants")
    names = [op.name for op in module.walk()]
    assert ("nnef.tile" not in names) == folded
    y = nnefopt.run(module, {"x": np.zeros(1, np.float32)})["y"]
    assert y.shape == (2 * repeats,) and y[:4].tolist() == [1.0, 2.0, 1.0, 2.0]


def test_folding_one_value_broadcast_keeps_one_value(tmp_path):
    count = 1 << 20  # past the small-result bound: only a view keeps this fold cheap
    model = write_model(tmp_path / "m", f"""\
        version 1.0;
        graph G( x ) -> ( y )
        {{
            x = external<scalar>(shape = [{count}]);
            c = constant<scalar>(shape = [{count}], value = [3.0]);
            y = add(x, neg(c));
        }}
        """)
    module = nnefopt.optimize(nnefopt.load(model), "fold-constants")
    constants = [op for op in module.walk() if op.name == "nnef.constant"]
    assert [op.properties["value"].data[0].value.data for op in constants] == [-3.0]
    assert not [op for op in module.walk() if op.name in ("nnef.neg", "nnef.variable")]
    assert nnefopt.run(module, {"x": np.ones(count, np.float32)})["y"][:2].tolist() == [-2.0, -2.0]
