"""NNEF tensor files (`.dat`): a 128-byte little-endian header, then the items.

Header: magic 4E EF, version (two bytes), data length, rank, eight extents, bits per
item, item type (low 16 bits a Khronos code, high 16 bits a vendor), 32 bytes of
item-type parameters (quantization parameters before NNEF 1.0.3, deprecated since),
44 reserved bytes; every number a little-endian uint32.

Every field is checked against the file's real size before anything is allocated, so a
header that claims 2^40 items costs nothing. Byte-aligned data is memory-mapped
read-only; only packed widths (1-bit logicals, 4-bit integers, ...) are unpacked.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import secrets
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnefopt.errors import Location, NNEFError, warn

HEADER_SIZE = 128
MAP_THRESHOLD = 1 << 20  # bytes of data from which a tensor is memory-mapped rather than read
MAX_RANK = 8
MAX_DATA_LENGTH = 0xFFFFFFFF  # the data length field is 32 bits wide
_HEADER = struct.Struct("<2s2BII8III32s44s")
_MAGIC = b"\x4e\xef"
_NO_PARAMS = bytes(32)

FLOAT, UINT, QUINT, QINT, INT, BOOL = range(6)
ITEM_TYPE_NAMES = {FLOAT: "float", UINT: "unsigned", QUINT: "quantized unsigned",
                   QINT: "quantized signed", INT: "signed", BOOL: "logical"}
_KINDS = {FLOAT: "f", UINT: "u", QUINT: "u", QINT: "i", INT: "i", BOOL: "b"}  # numpy dtype kinds
# Item-type codes of NNEF before 1.0.3 that kept min and max in the header; 1.0.3 moved
# quantization to graph.quant, and the Khronos reader no longer accepts them.
_LEGACY_CODES = {0x10: "linear", 0x11: "logarithmic"}


@dataclass(frozen=True)
class TensorHeader:
    version: tuple[int, int]
    shape: tuple[int, ...]
    bits_per_item: int
    item_type: int  # the code as stored: FLOAT, UINT, QUINT, QINT, INT or BOOL
    data_length: int
    quant_params: bytes = _NO_PARAMS  # the 32 item-type parameter bytes, as stored
    data_offset: int = HEADER_SIZE

    @property
    def item_type_name(self) -> str:
        return ITEM_TYPE_NAMES[self.item_type]

    @property
    def count(self) -> int:
        count = 1
        for extent in self.shape:
            count *= extent
        return count

    @property
    def is_quantized(self) -> bool:
        return self.item_type in (QUINT, QINT)

    @property
    def is_packed(self) -> bool:
        """Items narrower than a byte, or of a width numpy has no type for."""
        return self.bits_per_item not in (8, 16, 32, 64)

    @property
    def dtype(self) -> np.dtype:
        """The numpy type of the items, as the Khronos reader maps the item type."""
        bits, kind = self.bits_per_item, _KINDS[self.item_type]
        if self.item_type == UINT and any(self.quant_params[:4]):
            kind = "i"  # before 1.0.3, 'integer' items were signed when the first parameter was set
        elif self.item_type == UINT and bits == 1:
            kind = "b"  # ... and logicals were 1-bit 'integer' items
        if kind == "b":
            return np.dtype(np.bool_)
        if kind == "f":
            return np.dtype(f"<f{bits // 8}")
        width = next(w for w in (8, 16, 32, 64) if bits <= w)
        return np.dtype(f"<{kind}{width // 8}")


def item_problem(code: int, bits: int) -> tuple[str, str] | None:
    """(field, message) when an item type and width are not a valid pair, else None."""
    if code & 0xFFFF0000:
        return "item_type", f"vendor-defined item type {code:#x} is not supported"
    if code in _LEGACY_CODES:
        return "item_type", (f"item type {code:#x} is the pre-1.0.3 '{_LEGACY_CODES[code]}' quantization code; "
                             "convert the model with a current NNEF exporter")
    if code not in ITEM_TYPE_NAMES:
        return "item_type", f"unknown item type code {code}"
    valid = {FLOAT: (16, 32, 64), BOOL: (1, 8)}.get(code, range(1, 65))
    if bits not in valid:
        return "bits_per_item", f"{bits} bits per item is invalid for {ITEM_TYPE_NAMES[code]} items"
    return None


# ---- reading ------------------------------------------------------------------------


def read_header(path: str | Path, *, name: str | None = None) -> TensorHeader:
    """The validated header; `name` is what messages call the file (default: the path)."""
    with _open(path, name) as (file, size):
        return _parse(file.read(HEADER_SIZE), size, name or str(path))


def read_tensor(path: str | Path, *, name: str | None = None) -> np.ndarray:
    return read_tensor_file(path, name=name)[1]


def read_tensor_file(path: str | Path, *, name: str | None = None) -> tuple[TensorHeader, np.ndarray]:
    """The header (item type and width, to write the tensor back alike) and the data."""
    with _open(path, name) as (file, size):
        header = _parse(file.read(HEADER_SIZE), size, name or str(path))
        if header.count == 0:
            return header, np.zeros(header.shape, header.dtype)
        if header.data_length < MAP_THRESHOLD:
            # Small weights are read: a mapping keeps a file descriptor open (until Python
            # 3.13), and a model with thousands of small tensors would run out of them.
            mapped = file.read(header.data_length)
            offset = 0
        else:
            # One mapping of the whole file, made while the validated file is still open.
            mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
            offset = HEADER_SIZE
    if header.is_packed:
        raw = np.frombuffer(mapped, np.uint8, header.data_length, offset)
        return header, _unpack(raw, header).reshape(header.shape)
    if header.dtype.kind == "b":  # 8-bit logicals: any non-zero byte is true
        return header, np.frombuffer(mapped, np.uint8, header.count, offset).reshape(header.shape) != 0
    return header, np.frombuffer(mapped, header.dtype, header.count, offset).reshape(header.shape)


@contextlib.contextmanager
def _open(path: str | Path, name: str | None):
    """The open file and its size; an unreadable file is an NNEFError."""
    try:
        with open(path, "rb") as file:
            yield file, os.fstat(file.fileno()).st_size
    except OSError as exc:
        raise NNEFError(exc.strerror or str(exc), Location(name or str(path), field="file")) from None


def _parse(raw: bytes, size: int, name: str) -> TensorHeader:
    def fail(field: str, message: str) -> NNEFError:
        return NNEFError(message, Location(name, field=field))

    if len(raw) < HEADER_SIZE:
        raise fail("header", f"file has {size} bytes, shorter than the {HEADER_SIZE}-byte header")
    magic, major, minor, data_length, rank, *extents, bits, code, params, reserved = _HEADER.unpack(raw)
    if magic != _MAGIC:
        raise fail("magic", f"not an NNEF tensor file (magic bytes {magic.hex()}, expected 4eef)")
    if (major, minor) != (1, 0):
        raise fail("version", f"unsupported version {major}.{minor} (expected 1.0)")
    if rank > MAX_RANK:
        raise fail("rank", f"rank {rank} exceeds the maximum of {MAX_RANK}")
    problem = item_problem(code, bits)
    if problem:
        raise fail(*problem)
    header = TensorHeader((major, minor), tuple(extents[:rank]), bits, code, data_length, params)
    # Python integers do not overflow: a claim of 2^40 items stays 2^40 (the Khronos
    # C++ reader once wrapped this product around 32 bits).
    count, needed, held = header.count, (header.count * bits + 7) // 8, size - HEADER_SIZE
    if needed > held:
        raise fail("data_length", f"header claims {count} items ({needed} bytes) but the file holds {held} bytes")
    if data_length != needed:
        raise fail("data_length", f"header says {data_length} bytes but {count} items of {bits} bits need {needed}")
    if held > needed:
        warn(f"{held - needed} bytes after the tensor data are ignored", Location(name, field="data_length"))
    for field, unused in (("extents", extents[rank:]), ("reserved", reserved)):
        if any(unused):
            warn("non-zero values where the format wants zeros are ignored", Location(name, field=field))
    return header


def _unpack(raw: np.ndarray, header: TensorHeader) -> np.ndarray:
    """Items packed most significant bit first: the Khronos order for 1-bit logicals,
    and the same bit stream for every other width numpy has no type for."""
    bits, count, dtype = header.bits_per_item, header.count, header.dtype
    stream = np.unpackbits(raw, count=count * bits).reshape(count, bits)
    if dtype.kind == "b":
        return stream[:, 0].view(np.bool_)  # unpackbits gives only 0 and 1
    values = np.zeros(count, np.dtype(f"<u{dtype.itemsize}"))
    for column in stream.T:  # bit by bit: memory stays at the bit stream's size
        values <<= 1
        values |= column
    if dtype.kind == "i":  # sign-extend: lift the item's top bit to the word's, shift back arithmetically
        spare = dtype.itemsize * 8 - bits
        return (values << spare).view(dtype) >> spare
    return values


# ---- writing ------------------------------------------------------------------------

_DEFAULT_CODES = {"f": FLOAT, "i": INT, "u": UINT, "b": BOOL}


def write_tensor(path: str | Path, array: np.ndarray, *, bits: int | None = None, item_type: int | None = None,
                 quant: bytes | None = None, quantized: bool = False) -> None:
    """Write `array` atomically as a tensor file.

    `item_type` defaults to the dtype's (float, signed, unsigned or logical; `quantized`
    picks the quantized codes for integers); `bits` stores items narrower than their
    dtype (packed below a byte); `quant` is the 32-byte item-type parameter block to
    keep, e.g. a header's `quant_params`. The file must read back with the array's
    dtype kind and values, else ValueError: a bad argument is a bug, not bad input.
    """
    array = np.asarray(array)
    kind = array.dtype.kind
    if kind not in _DEFAULT_CODES:
        raise ValueError(f"no NNEF item type for dtype {array.dtype}")
    if array.ndim > MAX_RANK:
        raise ValueError(f"rank {array.ndim} exceeds the maximum of {MAX_RANK}")
    if item_type is None:
        item_type = _DEFAULT_CODES[kind]
        if quantized:
            item_type = {INT: QINT, UINT: QUINT}.get(item_type, item_type)
    if bits is None:
        bits = 1 if kind == "b" else array.dtype.itemsize * 8
    problem = item_problem(item_type, bits)
    if problem:
        raise ValueError(problem[1])
    quant = _NO_PARAMS if quant is None else bytes(quant)
    if len(quant) != len(_NO_PARAMS):
        raise ValueError(f"quant must be {len(_NO_PARAMS)} bytes, not {len(quant)}")
    header = TensorHeader((1, 0), array.shape, bits, item_type, (array.size * bits + 7) // 8, quant)
    if header.dtype.kind != kind:
        raise ValueError(f"{array.dtype} items cannot be stored as {bits}-bit {header.item_type_name} items: "
                         f"they would read back as {header.dtype}")
    if header.data_length > MAX_DATA_LENGTH:
        raise ValueError(f"{header.data_length} bytes of data do not fit a tensor file (at most {MAX_DATA_LENGTH})")
    payload = _encode(array.reshape(-1), header)
    with _replacing(Path(path)) as temporary, open(temporary, "wb") as file:
        file.write(_pack_header(header))
        file.write(payload)


def _pack_header(header: TensorHeader) -> bytes:
    extents = list(header.shape) + [0] * (MAX_RANK - len(header.shape))
    return _HEADER.pack(_MAGIC, *header.version, header.data_length, len(header.shape), *extents,
                        header.bits_per_item, header.item_type, header.quant_params, bytes(44))


def _encode(flat: np.ndarray, header: TensorHeader) -> np.ndarray:
    """The data bytes: cast to the item width, or packed most significant bit first."""
    bits, dtype = header.bits_per_item, header.dtype
    if dtype.kind == "b":
        return np.packbits(flat) if bits == 1 else flat.astype(np.uint8)
    if dtype.kind in "iu":
        _check_range(flat, bits, dtype.kind == "i")
    if not header.is_packed:
        return np.ascontiguousarray(flat.astype(dtype, copy=False))
    unsigned = flat.astype(dtype, copy=False).view(f"<u{dtype.itemsize}")  # two's complement bits
    stream = np.empty((flat.size, bits), np.uint8)
    for column in range(bits):
        stream[:, column] = (unsigned >> (bits - 1 - column)) & 1
    return np.packbits(stream)


def _check_range(flat: np.ndarray, bits: int, signed: bool) -> None:
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if flat.size and (int(flat.min()) < low or int(flat.max()) > high):
        raise ValueError(f"values {flat.min()}..{flat.max()} do not fit {bits}-bit items ({low}..{high})")


def copy_tensor_file(source: str | Path, destination: str | Path) -> None:
    """Copy an unchanged weight byte for byte (after checking it is a tensor file)."""
    read_header(source)
    with _replacing(Path(destination)) as temporary:
        shutil.copyfile(source, temporary)


@contextlib.contextmanager
def _replacing(path: Path):
    """A new file beside `path` that replaces it only once complete: readers (and
    memory maps of the old file) never see half a tensor. Created with the umask's
    permissions, unlike mkstemp's owner-only ones."""
    # The name's start only: a temporary name must fit where the final name just does.
    temporary = path.with_name(f".{path.name[:100]}.{secrets.token_hex(6)}.tmp")
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
