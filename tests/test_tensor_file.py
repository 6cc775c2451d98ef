"""Tensor files: what nnefopt reads is what the Khronos package reads, bit for bit;
what it writes, the Khronos package reads back (and writes identically); packed
widths follow an independent bit-by-bit model; bad headers are refused early."""

from __future__ import annotations

import mmap
import os
import struct
import tarfile
import time
import tracemalloc

import nnef
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nnefopt.errors import NNEFError, NNEFWarning
from nnefopt.frontend.tensor_file import (BOOL, FLOAT, INT, MAP_THRESHOLD, QINT, QUINT, UINT, copy_tensor_file,
                                          read_header, read_tensor, read_tensor_file, write_tensor)
from tests.models import SHARED

DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
          np.uint8, np.uint16, np.uint32, np.uint64, np.bool_]
SHAPES = hnp.array_shapes(min_dims=0, max_dims=8, min_side=0, max_side=3)
# hypothesis reruns the test body in one tmp_path; every example overwrites its files
EXAMPLES = settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])


def khronos_read(path, return_quantization=False):
    with open(path, "rb") as file:
        return nnef.read_tensor(file, return_quantization=return_quantization)  # the array unless asked


def khronos_write(path, array, quantized=False) -> None:
    with open(path, "wb") as file:
        nnef.write_tensor(file, array, quantized=quantized)


def assert_identical(ours: np.ndarray, theirs: np.ndarray, what="") -> None:
    assert isinstance(ours, np.ndarray) and isinstance(theirs, np.ndarray)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, what
    assert ours.tobytes() == theirs.tobytes(), what


def header_bytes(magic=b"\x4e\xef", version=(1, 0), length=16, extents=(4,), rank=None, bits=32, item_type=FLOAT,
                 params=bytes(32), reserved=bytes(44)) -> bytes:
    slots = list(extents) + [0] * (8 - len(extents))
    return struct.pack("<2s2BII8III32s44s", magic, *version, length, len(extents) if rank is None else rank,
                       *slots[:8], bits, item_type, params, reserved)


# ---- the shared models: every .dat reads as Khronos reads it --------------------------


def shared_tensor_files(variant: str, tmp_path) -> list:
    model, kind = variant.split("/")
    if kind != "tract":
        return sorted((SHARED / model / kind).glob("*.dat"))
    with tarfile.open(SHARED / model / "tract.nnef.tgz") as tar:
        for member in tar.getmembers():
            if member.name.endswith(".dat"):
                (tmp_path / member.name).write_bytes(tar.extractfile(member).read())
    return sorted(tmp_path.glob("*.dat"))


VARIANTS = sorted(f"{d.name}/{kind}" for d in SHARED.iterdir() for kind in ("kt", "t2n", "tract")
                  if (d / kind).is_dir() or (kind == "tract" and (d / "tract.nnef.tgz").is_file()))


@pytest.mark.parametrize("variant", VARIANTS)
def test_shared_tensors_read_like_khronos(tmp_path, variant):
    files = shared_tensor_files(variant, tmp_path)
    assert files
    for path in files:
        assert_identical(read_tensor(path), khronos_read(path), path.name)


def test_the_quantized_model_has_integer_tensors(tmp_path):
    headers = [read_header(p) for p in shared_tensor_files("cnn_digits_q8/tract", tmp_path)]
    assert {(h.item_type, h.dtype) for h in headers} == {(QINT, np.dtype(np.int8)), (INT, np.dtype(np.int32))}
    assert all(h.is_quantized == (h.item_type == QINT) for h in headers)


def _storage(array: np.ndarray) -> object:
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    return base.obj if isinstance(base, memoryview) else base


def test_large_data_is_memory_mapped_read_only(tmp_path):
    write_tensor(tmp_path / "w.dat", np.arange(MAP_THRESHOLD // 4, dtype=np.float32).reshape(-1, 4))
    data = read_tensor(tmp_path / "w.dat")
    assert isinstance(_storage(data), mmap.mmap)
    assert not data.flags.writeable  # the input model is never modified through it


def test_small_data_is_read_and_holds_no_file_open(tmp_path):
    write_tensor(tmp_path / "w.dat", np.arange(12, dtype=np.float32).reshape(3, 4))
    data = read_tensor(tmp_path / "w.dat")
    assert isinstance(_storage(data), bytes) and not data.flags.writeable
    np.testing.assert_array_equal(data, np.arange(12, dtype=np.float32).reshape(3, 4))


def test_thousands_of_tensors_do_not_exhaust_file_descriptors(tmp_path):
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    write_tensor(tmp_path / "w.dat", np.ones(16, np.float32))
    arrays = [read_tensor(tmp_path / "w.dat") for _ in range(min(soft, 65536) + 100)]
    assert len(arrays) > soft


# ---- round trips ------------------------------------------------------------------------


@EXAMPLES
@given(array=st.sampled_from(DTYPES).flatmap(lambda dtype: hnp.arrays(dtype, SHAPES)))
def test_round_trip_with_khronos(tmp_path, array):
    write_tensor(tmp_path / "ours.dat", array)
    assert_identical(khronos_read(tmp_path / "ours.dat"), array)
    assert_identical(read_tensor(tmp_path / "ours.dat"), array)
    khronos_write(tmp_path / "theirs.dat", array)
    assert (tmp_path / "ours.dat").read_bytes() == (tmp_path / "theirs.dat").read_bytes()
    assert_identical(read_tensor(tmp_path / "theirs.dat"), array)


@pytest.mark.parametrize("dtype,code", [(np.int8, QINT), (np.int32, QINT), (np.uint8, QUINT), (np.uint16, QUINT)])
def test_quantized_item_types(tmp_path, dtype, code):
    array = np.arange(-3, 9).astype(dtype)
    write_tensor(tmp_path / "ours.dat", array, quantized=True)
    data, quantized = khronos_read(tmp_path / "ours.dat", return_quantization=True)
    assert quantized
    assert_identical(data, array)
    header, back = read_tensor_file(tmp_path / "ours.dat")
    assert header.item_type == code and header.is_quantized and header.item_type_name.startswith("quantized")
    assert_identical(back, array)
    khronos_write(tmp_path / "theirs.dat", array, quantized=True)
    assert (tmp_path / "ours.dat").read_bytes() == (tmp_path / "theirs.dat").read_bytes()
    write_tensor(tmp_path / "again.dat", back, item_type=code)
    assert (tmp_path / "again.dat").read_bytes() == (tmp_path / "ours.dat").read_bytes()


def reference_payload(values: list[int], bits: int) -> bytes:
    """The packed bit stream, built one Python integer at a time: item 0 first, each
    item's most significant bit first, the last byte padded with zeros."""
    stream = "".join(format(v & ((1 << bits) - 1), f"0{bits}b") for v in values)
    stream += "0" * (-len(stream) % 8)
    return int(stream, 2).to_bytes(len(stream) // 8, "big") if stream else b""


@st.composite
def packed_cases(draw):
    bits = draw(st.integers(1, 63).filter(lambda b: b not in (8, 16, 32)))
    code = draw(st.sampled_from([INT, QINT, QUINT] + ([UINT] if bits > 1 else [])))
    signed = code in (INT, QINT)
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    shape = draw(SHAPES)
    values = draw(st.lists(st.integers(low, high), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    return bits, code, np.array(values, np.int64 if signed else np.uint64).reshape(shape)


@EXAMPLES
@given(case=packed_cases())
def test_packed_widths_follow_the_bit_stream_model(tmp_path, case):
    bits, code, array = case
    write_tensor(tmp_path / "p.dat", array, bits=bits, item_type=code)
    raw = (tmp_path / "p.dat").read_bytes()
    assert raw[128:] == reference_payload(array.reshape(-1).tolist(), bits)
    header, back = read_tensor_file(tmp_path / "p.dat")
    assert (header.bits_per_item, header.item_type, header.shape) == (bits, code, array.shape)
    width = next(w for w in (8, 16, 32, 64) if bits <= w)
    assert back.dtype == np.dtype(f"{'i' if code in (INT, QINT) else 'u'}{width // 8}")
    np.testing.assert_array_equal(back, array)
    write_tensor(tmp_path / "again.dat", back, bits=bits, item_type=code)  # writing back as read: same bytes
    assert (tmp_path / "again.dat").read_bytes() == raw


def test_one_bit_logicals_are_most_significant_bit_first(tmp_path):
    write_tensor(tmp_path / "b.dat", np.array([True] + [False] * 7 + [True]))
    assert (tmp_path / "b.dat").read_bytes()[128:] == bytes([0b10000000, 0b10000000])


def test_one_bit_unsigned_items_are_logicals_as_khronos_reads_them(tmp_path):
    """Before NNEF 1.0.3 logicals were stored as 1-bit 'integer' items, code 1."""
    (tmp_path / "b.dat").write_bytes(header_bytes(length=2, extents=(3, 3), bits=1, item_type=UINT) + b"\xa5\x80")
    assert_identical(read_tensor(tmp_path / "b.dat"), khronos_read(tmp_path / "b.dat"))
    assert read_tensor(tmp_path / "b.dat").tolist() == [[True, False, True], [False, False, True], [False, True, True]]
    with pytest.raises(ValueError, match="read back as bool"):
        write_tensor(tmp_path / "u.dat", np.ones(3, np.uint8), bits=1, item_type=UINT)


def test_legacy_signed_flag_makes_unsigned_items_signed(tmp_path):
    """Before 1.0.3 the first parameter of an 'integer' item type said it was signed."""
    params = struct.pack("<f", 1.0) + bytes(28)
    data = np.array([-2, 7, -32768], np.int16)
    raw = header_bytes(length=6, extents=(3,), bits=16, item_type=UINT, params=params) + data.tobytes()
    (tmp_path / "s.dat").write_bytes(raw)
    header, back = read_tensor_file(tmp_path / "s.dat")
    assert header.quant_params == params and header.item_type == UINT
    assert_identical(back, khronos_read(tmp_path / "s.dat"))
    assert_identical(back, data)
    write_tensor(tmp_path / "again.dat", back, item_type=header.item_type, quant=header.quant_params)
    assert (tmp_path / "again.dat").read_bytes() == raw


def test_eight_bit_logicals(tmp_path):
    array = np.array([[True, False], [False, True]])
    write_tensor(tmp_path / "b.dat", array, bits=8)
    assert (tmp_path / "b.dat").read_bytes()[128:] == bytes([1, 0, 0, 1])
    assert_identical(read_tensor(tmp_path / "b.dat"), array)
    (tmp_path / "c.dat").write_bytes(header_bytes(length=2, extents=(2,), bits=8, item_type=BOOL) + b"\x00\x07")
    assert read_tensor(tmp_path / "c.dat").tolist() == [False, True]  # any non-zero byte is true


@pytest.mark.parametrize("array,bits,dtype", [(np.array([-128, 5, 127], np.int32), 8, np.int8),
                                              (np.array([1.5, -2.25]), 32, np.float32),
                                              (np.array([70000], np.uint64), 32, np.uint32)])
def test_narrower_widths_cast(tmp_path, array, bits, dtype):
    write_tensor(tmp_path / "n.dat", array, bits=bits)
    assert_identical(read_tensor(tmp_path / "n.dat"), array.astype(dtype))


@pytest.mark.parametrize("shape,dtype", [((), np.float32), ((0,), np.float32), ((2, 0, 3), np.int8),
                                         ((0,), np.bool_), ((4, 0), np.int64)])
def test_empty_and_scalar_tensors(tmp_path, shape, dtype):
    array = np.full(shape, 3, dtype)
    write_tensor(tmp_path / "e.dat", array)
    assert read_header(tmp_path / "e.dat").data_length == array.nbytes
    assert_identical(read_tensor(tmp_path / "e.dat"), array)
    assert_identical(khronos_read(tmp_path / "e.dat"), array)


# ---- writing is atomic --------------------------------------------------------------------


def test_writing_replaces_atomically(tmp_path):
    path = tmp_path / "w.dat"
    write_tensor(path, np.zeros(4, np.float32))
    mapped = read_tensor(path)
    write_tensor(path, np.ones(4, np.float32))
    assert mapped.tolist() == [0, 0, 0, 0]  # a reader's mapping keeps the file it opened
    assert read_tensor(path).tolist() == [1, 1, 1, 1]
    assert [p.name for p in tmp_path.iterdir()] == ["w.dat"]  # no temporary left behind


def test_written_files_get_the_umask_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        write_tensor(tmp_path / "w.dat", np.zeros(1, np.float32))
        copy_tensor_file(tmp_path / "w.dat", tmp_path / "c.dat")
    finally:
        os.umask(umask)
    assert (tmp_path / "w.dat").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "c.dat").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    "array,options,words",
    [
        (np.zeros(2, np.complex64), {}, "no NNEF item type"),
        (np.zeros((1,) * 9, np.float32), {}, "rank 9"),
        (np.zeros(2, np.float32), {"bits": 8}, "invalid for float"),
        (np.array([8], np.int8), {"bits": 4}, "do not fit 4-bit"),
        (np.array([-1], np.int8), {"item_type": UINT}, "read back as uint8"),
        (np.zeros(2, np.float32), {"quant": b"\x01"}, "32 bytes"),
    ],
)
def test_bad_write_arguments_leave_the_old_file(tmp_path, array, options, words):
    write_tensor(tmp_path / "w.dat", np.ones(3, np.float32))
    before = (tmp_path / "w.dat").read_bytes()
    with pytest.raises(ValueError, match=words):
        write_tensor(tmp_path / "w.dat", array, **options)
    assert (tmp_path / "w.dat").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.dat"]


def test_copy_keeps_bytes_and_refuses_broken_sources(tmp_path):
    write_tensor(tmp_path / "a.dat", np.arange(6, dtype=np.int8), quantized=True)
    copy_tensor_file(tmp_path / "a.dat", tmp_path / "b.dat")
    assert (tmp_path / "a.dat").read_bytes() == (tmp_path / "b.dat").read_bytes()
    assert read_header(tmp_path / "b.dat").item_type_name == "quantized signed"
    (tmp_path / "bad.dat").write_bytes(b"junk")
    with pytest.raises(NNEFError):
        copy_tensor_file(tmp_path / "bad.dat", tmp_path / "c.dat")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.dat", "b.dat", "bad.dat"]


# ---- broken inputs --------------------------------------------------------------------------

HUGE = header_bytes(extents=(1 << 20, 1 << 20), length=(1 << 42) & 0xFFFFFFFF) + bytes(400)

BROKEN = [
    ("bad-magic", header_bytes(magic=b"PK") + bytes(16), "magic", "magic bytes 504b"),
    ("bad-version", header_bytes(version=(2, 0)) + bytes(16), "version", "unsupported version 2.0"),
    ("provisional-version", header_bytes(version=(0, 5)) + bytes(16), "version", "unsupported version 0.5"),
    ("rank-9", header_bytes(extents=(1,) * 9, length=4) + bytes(4), "rank", "rank 9 exceeds"),
    ("float-8-bits", header_bytes(bits=8, length=4) + bytes(4), "bits_per_item", "8 bits per item is invalid for float"),
    ("logical-4-bits", header_bytes(bits=4, length=2, item_type=BOOL) + bytes(2), "bits_per_item", "invalid for logical"),
    ("integer-0-bits", header_bytes(bits=0, length=0, item_type=INT), "bits_per_item", "0 bits"),
    ("integer-65-bits", header_bytes(bits=65, length=33, item_type=INT) + bytes(33), "bits_per_item", "65 bits"),
    ("unknown-item-type", header_bytes(item_type=9) + bytes(16), "item_type", "unknown item type code 9"),
    ("vendor-item-type", header_bytes(item_type=0x54520000) + bytes(16), "item_type", "vendor-defined"),
    ("legacy-linear", header_bytes(item_type=0x10, bits=8, length=4) + bytes(4), "item_type", "pre-1.0.3 'linear'"),
    ("truncated-data", header_bytes() + bytes(11), "data_length", "claims 4 items (16 bytes) but the file holds 11"),
    ("wrong-data-length", header_bytes(length=15) + bytes(16), "data_length", "says 15 bytes but 4 items of 32 bits need 16"),
    ("short-file", b"\x4e\xef\x01\x00", "header", "file has 4 bytes, shorter than the 128-byte header"),
    ("huge-claim", HUGE, "data_length",
     "header claims 1099511627776 items (4398046511104 bytes) but the file holds 400 bytes"),
]


@pytest.mark.parametrize("raw,field,words", [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
@pytest.mark.parametrize("reader", [read_header, read_tensor])
def test_broken_files_name_the_file_and_field(tmp_path, reader, raw, field, words):
    path = tmp_path / "bad.dat"
    path.write_bytes(raw)
    with pytest.raises(NNEFError) as info:
        reader(path)
    assert str(info.value).startswith(f"{path}: {field}: error: "), str(info.value)
    assert words in str(info.value)


def test_huge_claim_fails_fast_without_allocating(tmp_path):
    (tmp_path / "huge.dat").write_bytes(HUGE)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(NNEFError):
            read_tensor(tmp_path / "huge.dat")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 1.0
    assert peak < 2**20


def test_missing_file_and_display_name(tmp_path):
    with pytest.raises(NNEFError, match=r"^model\.tgz:w\.dat: file: error: "):
        read_tensor(tmp_path / "none.dat", name="model.tgz:w.dat")
    (tmp_path / "bad.dat").write_bytes(b"PK")
    with pytest.raises(NNEFError, match=r"^model\.tgz:w\.dat: header: error: "):
        read_header(tmp_path / "bad.dat", name="model.tgz:w.dat")


@pytest.mark.parametrize(
    "raw,field",
    [
        (header_bytes() + bytes(20), "data_length"),  # 4 bytes past the data
        (header_bytes(reserved=b"\x01" + bytes(43)) + bytes(16), "reserved"),
        (header_bytes(extents=(4, 7), rank=1) + bytes(16), "extents"),  # a slot past the rank
    ],
    ids=["trailing-bytes", "reserved", "unused-extent"],
)
def test_harmless_oddities_warn_and_read(tmp_path, raw, field):
    (tmp_path / "odd.dat").write_bytes(raw)
    with pytest.warns(NNEFWarning) as record:
        data = read_tensor(tmp_path / "odd.dat")
    assert [str(w.message).split(": ")[:2] for w in record] == [[str(tmp_path / "odd.dat"), field]]
    assert data.tolist() == [0, 0, 0, 0]
