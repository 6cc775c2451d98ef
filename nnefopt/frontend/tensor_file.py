"""NNEF tensor files (`.dat`): a 128-byte little-endian header, then the items.

Every header field is checked against the file's real size before anything is
allocated, so a header that claims 2^40 items costs nothing. Byte-aligned data is
memory-mapped read-only; only packed widths (1-bit logicals, 4-bit integers, ...)
are unpacked into memory.
"""

from __future__ import annotations

import mmap
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnefopt.errors import Location, NNEFError

HEADER_SIZE = 128
MAX_RANK = 8
_HEADER = struct.Struct("<2s2BII8III19I")
_MAGIC = b"\x4e\xef"

FLOAT, UINT, QUINT, QINT, INT, BOOL = range(6)
ITEM_TYPE_NAMES = {FLOAT: "float", UINT: "unsigned", QUINT: "quantized unsigned",
                   QINT: "quantized signed", INT: "signed", BOOL: "logical"}
_SIGNED = (INT, QINT)


@dataclass(frozen=True)
class TensorHeader:
    version: tuple[int, int]
    shape: tuple[int, ...]
    bits_per_item: int
    item_type: int
    data_length: int

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
        bits = self.bits_per_item
        if self.item_type == FLOAT:
            return np.dtype(f"<f{bits // 8}")
        if self.item_type == BOOL:
            return np.dtype(np.bool_)
        width = next(w for w in (8, 16, 32, 64) if bits <= w)
        return np.dtype(f"<{'i' if self.item_type in _SIGNED else 'u'}{width // 8}")


def _fail(path: Path, field: str, message: str) -> NNEFError:
    return NNEFError(message, Location(str(path), field=field))


def read_header(path: str | Path) -> TensorHeader:
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as file:
            raw = file.read(HEADER_SIZE)
    except OSError as exc:
        raise _fail(path, "file", exc.strerror or str(exc)) from None
    if len(raw) < HEADER_SIZE:
        raise _fail(path, "header", f"file has {size} bytes, shorter than the {HEADER_SIZE}-byte header")
    magic, major, minor, data_length, rank, *rest = _HEADER.unpack(raw)
    extents, bits, item_type = rest[:MAX_RANK], rest[MAX_RANK], rest[MAX_RANK + 1]
    if magic != _MAGIC:
        raise _fail(path, "magic", f"not an NNEF tensor file (magic bytes {magic.hex()}, expected 4eef)")
    if (major, minor) != (1, 0):
        raise _fail(path, "version", f"unsupported version {major}.{minor} (expected 1.0)")
    if rank > MAX_RANK:
        raise _fail(path, "rank", f"rank {rank} exceeds the maximum of {MAX_RANK}")
    header = TensorHeader((major, minor), tuple(extents[:rank]), bits, item_type, data_length)
    _check_item_type(path, header)
    expected = (header.count * bits + 7) // 8
    if data_length != expected:
        raise _fail(path, "data_length", f"header says {data_length} bytes but extents {list(header.shape)} "
                                         f"of {bits}-bit items need {expected}")
    if size < HEADER_SIZE + data_length:
        raise _fail(path, "data_length", f"header claims {header.count} items ({data_length} bytes) "
                                         f"but the file holds {size - HEADER_SIZE} bytes of data")
    return header


def _check_item_type(path: Path, header: TensorHeader) -> None:
    code, bits = header.item_type, header.bits_per_item
    if code & 0xFFFF0000:
        raise _fail(path, "item_type", f"vendor-defined item type {code:#x} is not supported")
    if code not in ITEM_TYPE_NAMES:
        raise _fail(path, "item_type", f"unknown item type code {code}")
    valid = {FLOAT: bits in (16, 32, 64), BOOL: bits in (1, 8)}.get(code, 1 <= bits <= 64)
    if not valid:
        raise _fail(path, "bits_per_item", f"{bits} bits per item is invalid for {ITEM_TYPE_NAMES[code]} items")


def read_tensor(path: str | Path) -> np.ndarray:
    return read_tensor_file(path)[1]


def read_tensor_file(path: str | Path) -> tuple[TensorHeader, np.ndarray]:
    """The header (item type and width, to write the tensor back alike) and the data."""
    path = Path(path)
    header = read_header(path)
    return header, _read_data(path, header)


def _read_data(path: Path, header: TensorHeader) -> np.ndarray:
    if header.count == 0:
        return np.zeros(header.shape, header.dtype)
    if not header.is_packed:
        # mmap + frombuffer: a read-only view of the file, far cheaper to set up than np.memmap
        with open(path, "rb") as file:
            mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        data = np.frombuffer(mapped, dtype=header.dtype, count=header.count, offset=HEADER_SIZE)
        return data.reshape(header.shape)
    raw = np.fromfile(path, dtype=np.uint8, count=header.data_length, offset=HEADER_SIZE)
    return _unpack(raw, header).reshape(header.shape)


def _unpack(raw: np.ndarray, header: TensorHeader) -> np.ndarray:
    """Items packed most significant bit first, as the reference implementation does."""
    bits, count = header.bits_per_item, header.count
    flat = np.unpackbits(raw)[: count * bits]
    if header.item_type == BOOL:
        return flat.astype(np.bool_)
    weights = (1 << np.arange(bits - 1, -1, -1, dtype=np.uint64)).astype(np.uint64)
    values = flat.reshape(count, bits).astype(np.uint64) @ weights
    if header.item_type in _SIGNED:
        signed = values.astype(np.int64)
        signed[signed >= (1 << (bits - 1))] -= 1 << bits
        return signed.astype(header.dtype)
    return values.astype(header.dtype)


_DTYPE_ITEMS = {"f": FLOAT, "i": INT, "u": UINT, "b": BOOL}


def write_tensor(path: str | Path, array: np.ndarray, *, bits: int | None = None, quantized: bool = False) -> None:
    """Write `array` atomically; `bits` packs integers narrower than their dtype."""
    array = np.asarray(array)
    if array.ndim > MAX_RANK:
        raise ValueError(f"rank {array.ndim} exceeds the maximum of {MAX_RANK}")
    item_type = _DTYPE_ITEMS.get(array.dtype.kind)
    if item_type is None:
        raise ValueError(f"no NNEF item type for dtype {array.dtype}")
    if quantized:
        item_type = {INT: QINT, UINT: QUINT}[item_type]
    bits = bits or (1 if item_type == BOOL else array.dtype.itemsize * 8)
    flat = array.reshape(-1)
    if bits % 8 == 0 and item_type != BOOL:
        payload = flat.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    else:
        payload = _pack(flat, bits).tobytes()
    extents = list(array.shape) + [0] * (MAX_RANK - array.ndim)
    header = _HEADER.pack(_MAGIC, 1, 0, len(payload), array.ndim, *extents, bits, item_type, *[0] * 19)
    _atomic_write(Path(path), [header, payload])


def _pack(flat: np.ndarray, bits: int) -> np.ndarray:
    values = flat.astype(np.int64).astype(np.uint64) & np.uint64((1 << bits) - 1)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint64)
    return np.packbits(((values[:, None] >> shifts) & np.uint64(1)).astype(np.uint8).reshape(-1))


def _atomic_write(path: Path, chunks: list[bytes]) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def copy_tensor_file(source: str | Path, destination: str | Path) -> None:
    """Copy an unchanged weight byte for byte (after checking it is a tensor file)."""
    read_header(source)
    destination = Path(destination)
    handle, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    os.close(handle)
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, destination)
    except BaseException:
        os.unlink(temporary)
        raise
