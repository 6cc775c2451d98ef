"""Kernels of tract's core operations that tract's NNEF writer emits and that have no
standard NNEF equivalent of one operation (tract_core.nnef declares them)."""

from __future__ import annotations

import numpy as np

from .kernels_elementwise import floating
from .registry import kernel


@kernel("tract_core_downsample")
def tract_core_downsample(input, axis, stride, modulo=0):
    """Every `stride`-th item along `axis`, starting at `modulo`."""
    x = np.asarray(input)
    index = [slice(None)] * x.ndim
    index[axis] = slice(modulo, None, stride)
    return x[tuple(index)].copy()


@kernel("tract_core_gather")
def tract_core_gather(input, indices, axis):
    """ONNX Gather: the items of `input` at `indices` along `axis` (negative counts from the end)."""
    x = np.asarray(input)
    return np.take(x, np.asarray(indices, np.int64), axis=axis)


@kernel("tract_core_rms_norm")
def tract_core_rms_norm(input, axis, eps):
    """x / sqrt(mean(x², axis) + eps), the mean kept as a size-1 axis."""
    x = floating(input)
    mean_square = np.mean(np.square(x), axis=axis, keepdims=True)
    return (x / np.sqrt(mean_square + x.dtype.type(eps))).astype(x.dtype)


@kernel("square")
def square(x):
    x = floating(x)
    return x * x


# ---- tract_core_scan: a loop over chunks of its inputs, a fragment as the body ----------------


def scan_iterations(length: int, chunk: int) -> int:
    """How many times the body runs: the scan axis in chunks, the last one partial."""
    return -(-length // abs(chunk))


def scan_chunk(input: np.ndarray, axis: int, index: int, chunk: int) -> np.ndarray:
    """The `index`-th chunk of `input` along `axis` as tract slices it: from the front for
    a positive `chunk`, from the back for a negative one (items in their order within the
    chunk); a partial chunk is padded with zeros (tract leaves them undefined) at its end,
    or at its start going backward."""
    length, size = input.shape[axis], abs(chunk)
    if chunk > 0:
        start, stop = index * size, min((index + 1) * size, length)
        pad = (0, size - (stop - start))
    else:
        stop, start = length - index * size, max(length - (index + 1) * size, 0)
        pad = (size - (stop - start), 0)
    part = np.take(input, range(start, stop), axis=axis)
    if pad == (0, 0):
        return part
    widths = [(0, 0)] * input.ndim
    widths[axis] = pad
    return np.pad(part, widths)


def place_chunk(output: np.ndarray, axis: int, value: np.ndarray, index: int, backward: bool) -> None:
    """`value` (one iteration's result) into the full `output`, where tract puts it:
    at index * size forward, or ending at the back going backward (tract's offset
    length - 1 - index * size, as many items as fit)."""
    length, size = output.shape[axis], value.shape[axis]
    offset = length - 1 - index * size if backward else index * size
    count = min(size, length - offset)
    target = [slice(None)] * output.ndim
    target[axis] = slice(offset, offset + count)
    source = [slice(None)] * value.ndim
    source[axis] = slice(0, count)
    output[tuple(target)] = value[tuple(source)]


def tract_core_scan(body, inputs: list, params: list[tuple], results: list[tuple], skip: int = 0) -> list:
    """tract's Scan. `body(arguments)` runs the body once, giving its results in order.
    `params[i]` says what the body's i-th argument is: ("scan", axis, chunk) a chunk of
    `inputs[i]` per iteration, ("full",) `inputs[i]` each time, ("state",) `inputs[i]`
    first, then a result the body gave for a state. `results[j]` says what the body's
    j-th result is: (state, last_slot, full_slot, axis, chunk): a state (the k-th state
    result feeds the k-th state argument, as in tract), the value of the last iteration
    for output `last_slot`, every iteration's value along `axis` for `full_slot` (None
    where not). The first `skip` iterations do not run. The outputs, by slot."""
    scans = [(inputs[i], axis, chunk) for i, (kind, *rest) in enumerate(params) if kind == "scan"
             for axis, chunk in [rest]]
    if not scans:
        raise ValueError("a scan without a scanned input has no iteration count")
    first, axis, chunk = scans[0]
    iterations = scan_iterations(first.shape[axis], chunk)
    if iterations <= skip:
        raise ValueError(f"every iteration ({iterations}) is skipped (skip = {skip})")
    state = [np.asarray(inputs[i]) for i, (kind, *_) in enumerate(params) if kind == "state"]
    slots = 1 + max(slot for r in results for slot in r[1:3] if slot is not None)
    outputs: list = [None] * slots
    for index in range(skip, iterations):
        remaining = iter(state)
        arguments = []
        for value, (kind, *rest) in zip(inputs, params):
            if kind == "scan":
                arguments.append(scan_chunk(np.asarray(value), rest[0], index, rest[1]))
            elif kind == "state":
                arguments.append(next(remaining))
            else:
                arguments.append(value)
        values = body(arguments)
        state = []
        for value, (is_state, last_slot, full_slot, out_axis, out_chunk) in zip(values, results):
            value = np.asarray(value)
            if full_slot is not None:
                if outputs[full_slot] is None:
                    shape = list(value.shape)
                    shape[out_axis] *= iterations
                    outputs[full_slot] = np.zeros(shape, value.dtype)
                place_chunk(outputs[full_slot], out_axis, value, index, out_chunk < 0)
            if last_slot is not None and index == iterations - 1:
                outputs[last_slot] = value
            if is_state:
                state.append(value)
    return outputs
