"""Tensor files: what nnefopt reads is what the Khronos package reads, bit for bit;
what it writes, the Khronos package reads back; bad headers are refused early."""

from __future__ import annotations

import glob
import mmap
import struct
import tarfile

import nnef
import numpy as np
import pytest

from nnefopt.errors import NNEFError
from nnefopt.frontend.tensor_file import copy_tensor_file, read_header, read_tensor, write_tensor
from tests.models import SHARED

DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
          np.uint8, np.uint16, np.uint32, np.uint64, np.bool_]


def khronos_read(path) -> np.ndarray:
    with open(path, "rb") as file:
        return nnef.read_tensor(file)


def khronos_write(path, array) -> None:
    with open(path, "wb") as file:
        nnef.write_tensor(file, array)


def shared_tensor_files(tmp_root) -> list:
    files = sorted(glob.glob(str(SHARED / "*" / "kt" / "*.dat")) + glob.glob(str(SHARED / "*" / "t2n" / "*.dat")))
    for archive in sorted(SHARED.glob("*/tract.nnef.tgz")):
        target = tmp_root / archive.parent.name
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        files += sorted(str(p) for p in target.rglob("*.dat"))
    return files


def test_every_shared_tensor_reads_like_khronos(tmp_path):
    files = shared_tensor_files(tmp_path)
    assert len(files) > 100
    dtypes = set()
    for path in files:
        ours, theirs = read_tensor(path), khronos_read(path)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, path
        assert np.ascontiguousarray(ours).tobytes() == np.ascontiguousarray(theirs).tobytes(), path
        dtypes.add(ours.dtype)
    assert np.dtype(np.int8) in dtypes or np.dtype(np.int32) in dtypes  # the quantized model's integers


def test_float_data_is_memory_mapped(tmp_path):
    write_tensor(tmp_path / "w.dat", np.arange(12, dtype=np.float32).reshape(3, 4))
    data = read_tensor(tmp_path / "w.dat")
    base = data
    while isinstance(base, np.ndarray):
        base = base.base
    assert isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)
    assert not data.flags.writeable  # the input model is never modified through it


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(), (0,), (5,), (2, 3, 4), (1, 1, 1, 1, 1, 1, 1, 9)])
def test_round_trip_with_khronos(tmp_path, dtype, shape):
    rng = np.random.default_rng(0)
    if np.dtype(dtype).kind == "f":
        array = rng.standard_normal(shape).astype(dtype)
    elif np.dtype(dtype).kind == "b":
        array = rng.integers(0, 2, shape).astype(np.bool_)
    else:
        info = np.iinfo(dtype)
        array = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    write_tensor(tmp_path / "ours.dat", array)
    np.testing.assert_array_equal(khronos_read(tmp_path / "ours.dat"), array)
    khronos_write(tmp_path / "theirs.dat", array)
    assert (tmp_path / "ours.dat").read_bytes() == (tmp_path / "theirs.dat").read_bytes()
    back = read_tensor(tmp_path / "theirs.dat")
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("bits,signed", [(1, False), (2, True), (3, False), (4, True), (4, False), (6, True), (12, True)])
def test_packed_integer_widths(tmp_path, bits, signed):
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    array = np.random.default_rng(bits).integers(low, high, (3, 7), endpoint=True).astype(np.int16 if signed else np.uint16)
    write_tensor(tmp_path / "p.dat", array, bits=bits)
    header = read_header(tmp_path / "p.dat")
    assert header.bits_per_item == bits and header.data_length == (21 * bits + 7) // 8
    back = read_tensor(tmp_path / "p.dat")
    np.testing.assert_array_equal(back.astype(np.int64), array.astype(np.int64))


def test_packed_bits_are_most_significant_first(tmp_path):
    write_tensor(tmp_path / "b.dat", np.array([True, False, False, False, False, False, False, False, True]))
    payload = (tmp_path / "b.dat").read_bytes()[128:]
    assert payload == bytes([0b10000000, 0b10000000])


def test_copy_keeps_bytes(tmp_path):
    write_tensor(tmp_path / "a.dat", np.arange(6, dtype=np.int8), quantized=True)
    copy_tensor_file(tmp_path / "a.dat", tmp_path / "b.dat")
    assert (tmp_path / "a.dat").read_bytes() == (tmp_path / "b.dat").read_bytes()
    assert read_header(tmp_path / "b.dat").item_type_name == "quantized signed"


def _header(**fields) -> bytes:
    values = dict(magic=b"\x4e\xef", major=1, minor=0, length=16, rank=1, extents=[4], bits=32, item_type=0)
    values.update(fields)
    extents = list(values["extents"]) + [0] * (8 - len(values["extents"]))
    return struct.pack("<2s2BII8III19I", values["magic"], values["major"], values["minor"], values["length"],
                       values["rank"], *extents[:8], values["bits"], values["item_type"], *[0] * 19)


@pytest.mark.parametrize(
    "fields,field,words",
    [
        (dict(magic=b"PK"), "magic", "not an NNEF tensor file"),
        (dict(major=2), "version", "unsupported version 2.0"),
        (dict(rank=9), "rank", "exceeds the maximum"),
        (dict(bits=8), "bits_per_item", "invalid for float"),
        (dict(item_type=5, bits=4, length=2), "bits_per_item", "invalid for logical"),
        (dict(item_type=9), "item_type", "unknown item type"),
        (dict(item_type=0x10000), "item_type", "vendor-defined"),
        (dict(length=15), "data_length", "need 16"),
        (dict(extents=[1 << 20, 1 << 20], rank=2, length=1 << 42 & 0xFFFFFFFF), "data_length", ""),
    ],
)
def test_bad_headers_name_the_field(tmp_path, fields, field, words):
    path = tmp_path / "bad.dat"
    path.write_bytes(_header(**fields) + bytes(16))
    with pytest.raises(NNEFError) as info:
        read_tensor(path)
    assert str(info.value).startswith(f"{path}: {field}: error: ")
    assert words in str(info.value)
