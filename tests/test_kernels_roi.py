"""The region-of-interest kernels against independent implementations.

NNEF rows are (y0, x0, y1, x1) with an exclusive end (spec 1.0.5, 4.6.1); ONNX rows are
(x1, y1, x2, y2). Where ONNX means the same thing, onnxruntime runs it (opset 19, so
RoiAlign-16 and MaxRoiPool-1):

* RoiAlign 'half_pixel' samples a region at start - 0.5 + (k + 0.5) * extent / h, which is
  NNEF's 'symmetric'; 'output_half_pixel' drops the -0.5, so it is 'symmetric' on the rows
  moved by +0.5. 'asymmetric' and 'aligned' are 'half_pixel' on rows with the start and
  extent that put the samples where those methods do.
* onnxruntime's RoiAlign 'max' takes the largest of the four weighted corners, not of the
  interpolated value (onnxruntime issue 6146), so max_roi_align is compared only where
  every sample is a pixel centre and the input positive, which makes the two agree.
* MaxRoiPool rounds `spatial_scale * coordinate` (half away from zero), makes the end
  inclusive and splits a region of extent r into bins [floor(i r / p), ceil((i + 1) r / p)).
  NNEF's cells [i floor(r / p), i floor(r / p) + ceil(r / p)) are the same bins when p
  divides r or p <= 2, so regions are drawn so.

The rest is worked out in closed form: constant and affine ("ramp") inputs, the whole
image against avg_pool and multilinear_upsample, and a cell-by-cell reading of the spec's
roi_pool text for regions that leave the image or do not divide evenly.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nnefopt
from nnefopt.interp.kernels import KERNELS
from tests.test_kernels import close, ort, randn, seeds

FEW = settings(max_examples=40, deadline=None)
METHODS = ["symmetric", "asymmetric", "aligned"]


def _onnx_rows(rois):
    """NNEF (y0, x0, y1, x1) -> ONNX (x1, y1, x2, y2)."""
    return np.ascontiguousarray(np.asarray(rois, np.float32)[:, [1, 0, 3, 2]])


@st.composite
def regions(draw, height, width, count, min_extent=0.0):
    """`count` regions inside a height x width image, in quarter pixels, extents >= min_extent."""
    rows = []
    for _ in range(count):
        row = []
        for n in (height, width):
            start = draw(st.integers(0, int(4 * (n - min_extent)))) / 4
            row.append((start, draw(st.integers(int(4 * (start + min_extent)), 4 * n)) / 4))
        rows.append([row[0][0], row[1][0], row[0][1], row[1][1]])
    return np.array(rows, np.float32)


@st.composite
def align_cases(draw, min_extent=0.0):
    height, width, batch = draw(st.integers(2, 9)), draw(st.integers(2, 9)), draw(st.integers(1, 2))
    count = draw(st.integers(1, 3))
    return dict(
        height=height, width=width, batch=batch,
        rois=draw(regions(height, width, count, min_extent)),
        index=np.array(draw(st.lists(st.integers(0, batch - 1), min_size=count, max_size=count)), np.int64),
        output_size=draw(st.lists(st.integers(1, 4), min_size=2, max_size=2)),
        rate=draw(st.lists(st.integers(1, 3), min_size=2, max_size=2)),
        seed=draw(seeds),
    )


def _input(case, positive=False):
    rng = np.random.default_rng(case["seed"])
    if positive:
        return rng.uniform(0.5, 2.0, (case["batch"], 3, case["height"], case["width"])).astype(np.float32)
    return randn(rng, case["batch"], 3, case["height"], case["width"])


def _roi_align(x, rois, index, output_size, rate, mode="avg", transform="half_pixel"):
    return ort("RoiAlign", x, rois, index, mode=mode, output_height=output_size[0], output_width=output_size[1],
               sampling_ratio=rate[0], spatial_scale=1.0, coordinate_transformation_mode=transform)


# ---- roi_resample and roi_align ---------------------------------------------------------------


@FEW
@given(align_cases())
def test_avg_roi_align_symmetric_matches_roi_align_half_pixel(case):
    case["rate"][1] = case["rate"][0]  # one sampling_ratio for both axes in ONNX
    x = _input(case)
    got = KERNELS["avg_roi_align"](x, case["rois"], case["index"], case["output_size"], case["rate"])
    assert got.dtype == np.float32
    close(got, _roi_align(x, _onnx_rows(case["rois"]), case["index"], case["output_size"], case["rate"]))


@FEW
@given(align_cases(min_extent=1.0))
def test_avg_roi_align_symmetric_matches_output_half_pixel_on_shifted_rows(case):
    # onnxruntime widens extents below 1 to 1 in this mode, hence min_extent.
    case["rate"][1] = case["rate"][0]
    x = _input(case)
    got = KERNELS["avg_roi_align"](x, case["rois"] + 0.5, case["index"], case["output_size"], case["rate"])
    want = _roi_align(x, _onnx_rows(case["rois"]), case["index"], case["output_size"], case["rate"],
                      transform="output_half_pixel")
    close(got, want)


@FEW
@given(align_cases(min_extent=1.0), st.sampled_from(["asymmetric", "aligned"]))
def test_avg_roi_align_other_methods_match_half_pixel_on_moved_rows(case, method):
    case["rate"][1] = case["rate"][0]
    if method == "aligned":  # at least two samples per axis: a step to match
        case["output_size"] = [max(o, 2) for o in case["output_size"]]
    size = np.array(case["output_size"]) * case["rate"]
    start, end = case["rois"][:, :2].astype(np.float64), case["rois"][:, 2:].astype(np.float64)
    step = (end - start - 1) / (size - 1) if method == "aligned" else (end - start) / size
    # 'half_pixel' samples at s - 0.5 + (k + 0.5) * e / h: choose s, e so that is start + k * step.
    moved = np.concatenate([start + 0.5 - 0.5 * step, start + 0.5 - 0.5 * step + step * size], axis=1)
    x = _input(case)
    got = KERNELS["avg_roi_align"](x, case["rois"], case["index"], case["output_size"], case["rate"],
                                   resize_method=method)
    close(got, _roi_align(x, _onnx_rows(moved), case["index"], case["output_size"], case["rate"]))


@FEW
@given(align_cases(), st.integers(1, 3), st.sampled_from([1, 3]))
def test_max_roi_align_matches_roi_align_max_on_pixel_centres(case, rate, spacing):
    # Regions of extent h * spacing (h samples, odd spacing) from an integer start sample
    # at start + k * spacing + (spacing - 1) / 2: pixel centres, where onnxruntime's max of
    # weighted corners is the pixel itself. The image is made large enough to hold them.
    size = [o * rate for o in case["output_size"]]
    case["height"], case["width"] = size[0] * spacing + case["height"], size[1] * spacing + case["width"]
    rng = np.random.default_rng(case["seed"])
    y0, x0 = (rng.integers(0, n - h * spacing + 1, len(case["index"]))
              for n, h in zip((case["height"], case["width"]), size))
    rois = np.stack([y0, x0, y0 + size[0] * spacing, x0 + size[1] * spacing], axis=1).astype(np.float32)
    x = _input(case, positive=True)
    got = KERNELS["max_roi_align"](x, rois, case["index"], case["output_size"], [rate, rate])
    assert got.dtype == np.float32
    close(got, _roi_align(x, _onnx_rows(rois), case["index"], case["output_size"], [rate, rate], mode="max"))


@FEW
@given(align_cases(), st.sampled_from(METHODS))
def test_roi_align_kernels_are_the_stdlib_bodies(case, method):
    # The bodies: roi_resample to output_size * sampling_rate, then avg_pool / max_pool of
    # sampling_rate blocks, here with the window spelled over all four axes.
    x, rois, index = _input(case), case["rois"], case["index"]
    size = [o * r for o, r in zip(case["output_size"], case["rate"])]
    resized = KERNELS["roi_resample"](x, rois, index, size, method=method)
    window = dict(size=[1, 1, *case["rate"]], stride=[1, 1, *case["rate"]], padding=[(0, 0)] * 4)
    for name, pool in (("avg_roi_align", "avg_pool"), ("max_roi_align", "max_pool")):
        got = KERNELS[name](x, rois, index, case["output_size"], case["rate"], resize_method=method)
        close(got, KERNELS[pool](resized, **window))


@FEW
@given(seeds, st.integers(1, 5), st.integers(1, 5), st.integers(1, 3), st.integers(1, 3), st.sampled_from(METHODS))
def test_roi_resample_of_the_whole_image_is_multilinear_upsample(seed, height, width, f, g, method):
    x = randn(np.random.default_rng(seed), 2, 3, height, width)
    rois = np.array([[0, 0, height, width]] * 2, np.float32)
    got = KERNELS["roi_resample"](x, rois, np.array([1, 0]), [height * f, width * g], method=method)
    assert got.dtype == np.float32
    close(got, KERNELS["multilinear_upsample"](x[[1, 0]], [f, g], method=method, border="replicate"))


def _samples(start, end, h, method):
    """The spec's sample positions along one axis, written out per method (module docstring)."""
    i = np.arange(h)
    if method == "symmetric":
        return start + (i + 0.5) * (end - start) / h - 0.5
    if method == "asymmetric":
        return start + i * (end - start) / h
    return start + i * (end - start - 1) / max(h - 1, 1)


@FEW
@given(seeds, st.integers(2, 9), st.integers(2, 9), st.integers(1, 5), st.integers(1, 5), st.sampled_from(METHODS),
       st.data())
def test_roi_resample_of_a_ramp_is_the_ramp_at_the_samples(seed, height, width, h, w, method, data):
    # Bilinear interpolation of an affine input is exact where no tap is clamped, so the
    # regions keep every sample inside [0, n - 1]: within [0.5, n - 0.5] for 'symmetric',
    # [0, n - 1] for 'asymmetric' and [0, n] with extent >= 1 for 'aligned'.
    rng = np.random.default_rng(seed)
    slope_y, slope_x, offset = rng.uniform(-2, 2, 3)
    ramp = slope_y * np.arange(height)[:, None] + slope_x * np.arange(width)[None, :] + offset
    x = np.stack([ramp, 2 * ramp]).astype(np.float32)[None]
    room = 0 if method == "aligned" else 1
    rois = data.draw(regions(height - room, width - room, 2, min_extent=1.0 if method == "aligned" else 0.0))
    rois += 0.5 if method == "symmetric" else 0
    got = KERNELS["roi_resample"](x, rois, np.array([0, 0]), [h, w], method=method)
    for k, (y0, x0, y1, x1) in enumerate(rois.astype(np.float64)):
        sy, sx = _samples(y0, y1, h, method), _samples(x0, x1, w, method)
        assert 0 <= sy.min() and sy.max() <= height - 1 and 0 <= sx.min() and sx.max() <= width - 1
        want = slope_y * sy[:, None] + slope_x * sx[None, :] + offset
        close(got[k, 0], want.astype(np.float32))
        close(got[k, 1], (2 * want).astype(np.float32))


@FEW
@given(seeds, st.lists(st.floats(-6, 14, width=32), min_size=4, max_size=4), st.sampled_from(METHODS))
def test_roi_resample_of_a_constant_is_the_constant(seed, corners, method):
    # Anywhere, even off the image: taps are clamped to the edge.
    value = np.float32(np.random.default_rng(seed).standard_normal())
    x = np.full((1, 2, 5, 7), value, np.float32)
    got = KERNELS["roi_resample"](x, np.array([corners], np.float32), np.array([0]), [3, 4], method=method)
    close(got, np.full((1, 2, 3, 4), value, np.float32))


def test_roi_resample_symmetric_by_hand():
    # One row 0, 10, 20, 30; region [1, 3) resampled to 4: samples 0.75, 1.25, 1.75, 2.25.
    x = np.array([0, 10, 20, 30], np.float32).reshape(1, 1, 1, 4)
    got = KERNELS["roi_resample"](x, np.array([[0, 1, 1, 3]], np.float32), np.array([0]), [1, 4])
    np.testing.assert_allclose(got.reshape(-1), [7.5, 12.5, 17.5, 22.5])


# ---- roi_pool ---------------------------------------------------------------------------------


def _round(v):
    return math.copysign(math.floor(abs(v) + 0.5), v)


def _spec_roi_pool(x, rois, index, output_size, reduce):
    """The 1.0.5 text cell by cell: rounded corners, cells of extent ceil(r / p) at stride
    floor(r / p) from the start, positions off the image reading 0, empty cells 0."""
    output = np.zeros((len(rois), x.shape[1], *output_size), np.float64)
    for k, (roi, b) in enumerate(zip(rois, index)):
        y0, x0, y1, x1 = (int(_round(float(v))) for v in roi)
        (ph, pw), (rh, rw) = output_size, (y1 - y0, x1 - x0)
        ch, cw, sh, sw = math.ceil(rh / ph), math.ceil(rw / pw), math.floor(rh / ph), math.floor(rw / pw)
        if ch <= 0 or cw <= 0:
            continue
        for i in range(ph):
            for j in range(pw):
                values = np.zeros((x.shape[1], ch, cw))
                for u in range(ch):
                    for v in range(cw):
                        yy, xx = y0 + i * sh + u, x0 + j * sw + v
                        if 0 <= yy < x.shape[2] and 0 <= xx < x.shape[3]:
                            values[:, u, v] = x[b, :, yy, xx]
                output[k, :, i, j] = reduce(values.reshape(x.shape[1], -1), axis=1)
    return output


@FEW
@given(seeds, st.integers(1, 2), st.integers(2, 8), st.integers(2, 8), st.integers(1, 4), st.integers(1, 4),
       st.lists(st.lists(st.integers(-12, 44), min_size=4, max_size=4), min_size=1, max_size=3))
def test_roi_pool_follows_the_spec_cell_by_cell(seed, batch, height, width, ph, pw, quarters):
    # Corners in quarter pixels from off the top-left to off the bottom-right, any order.
    rng = np.random.default_rng(seed)
    x = randn(rng, batch, 2, height, width)
    rois = np.array(quarters, np.float32) / 4
    index = rng.integers(0, batch, len(rois))
    for name, reduce in (("avg_roi_pool", np.mean), ("max_roi_pool", np.max)):
        got = KERNELS[name](x, rois, index, [ph, pw])
        assert got.dtype == np.float32
        close(got, _spec_roi_pool(x, rois, index, [ph, pw], reduce).astype(np.float32))


@FEW
@given(seeds, st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3))
def test_avg_roi_pool_of_the_whole_image_is_avg_pool(seed, ph, pw, kh, kw):
    x = randn(np.random.default_rng(seed), 2, 3, ph * kh, pw * kw)
    rois = np.array([[0, 0, ph * kh, pw * kw]] * 2, np.float32)
    got = KERNELS["avg_roi_pool"](x, rois, np.array([[0], [1]]), [ph, pw])  # batch_index [R, 1] as in the spec text
    close(got, KERNELS["avg_pool"](x, size=[1, 1, kh, kw], stride=[1, 1, kh, kw], padding=[(0, 0)] * 4))


@FEW
@given(seeds, st.integers(1, 9), st.integers(1, 9), st.integers(1, 4), st.integers(1, 4), st.integers(0, 3),
       st.integers(0, 3))
def test_roi_pool_of_a_ramp_is_the_ramp_at_the_cell_centre_and_end(seed, rh, rw, ph, pw, y0, x0):
    # Increasing ramp: a cell's mean is the ramp at its centre, its maximum at its last pixel.
    slope_y, slope_x = np.random.default_rng(seed).uniform(0.1, 2, 2)
    height, width = y0 + rh, x0 + rw
    ramp = (slope_y * np.arange(height)[:, None] + slope_x * np.arange(width)[None, :]).astype(np.float32)
    rois = np.array([[y0, x0, height, width]], np.float32)
    first_y, first_x = y0 + np.arange(ph) * (rh // ph), x0 + np.arange(pw) * (rw // pw)
    cell_y, cell_x = math.ceil(rh / ph), math.ceil(rw / pw)
    centre = slope_y * (first_y + (cell_y - 1) / 2)[:, None] + slope_x * (first_x + (cell_x - 1) / 2)[None, :]
    last = slope_y * (first_y + cell_y - 1)[:, None] + slope_x * (first_x + cell_x - 1)[None, :]
    close(KERNELS["avg_roi_pool"](ramp[None, None], rois, np.array([0]), [ph, pw])[0, 0], centre.astype(np.float32))
    close(KERNELS["max_roi_pool"](ramp[None, None], rois, np.array([0]), [ph, pw])[0, 0], last.astype(np.float32))


def test_roi_pool_cells_overlap_where_caffe_bins_do_not():
    # Extent 8 into 3 cells: extent 3, stride 2 -> [0, 3), [2, 5), [4, 7); pixel 7 unused.
    # (Caffe / ONNX MaxRoiPool bins would be [0, 3), [2, 6), [5, 8).)
    x = np.arange(8, dtype=np.float32).reshape(1, 1, 1, 8)
    rois = np.array([[0, 0, 1, 8]], np.float32)
    np.testing.assert_array_equal(KERNELS["avg_roi_pool"](x, rois, np.array([0]), [1, 3]).reshape(-1), [1, 3, 5])
    np.testing.assert_array_equal(KERNELS["max_roi_pool"](x, rois, np.array([0]), [1, 3]).reshape(-1), [2, 4, 6])


def test_roi_pool_rounds_corners_as_the_round_operation_does():
    # Halfway corners, negative ones too: pooling them is pooling their `round`.
    x = randn(np.random.default_rng(5), 1, 2, 6, 6)
    rois = np.array([[-0.5, -1.5, 2.5, 3.5], [0.5, -2.5, 5.5, 1.5], [-1.5, 0.5, 4.5, 6.5]], np.float32)
    for name in ("avg_roi_pool", "max_roi_pool"):
        rounded = KERNELS[name](x, KERNELS["round"](rois), np.zeros(3, np.int64), [2, 2])
        assert not np.array_equal(rounded, KERNELS[name](x, np.floor(rois), np.zeros(3, np.int64), [2, 2]))
        close(KERNELS[name](x, rois, np.zeros(3, np.int64), [2, 2]), rounded)


@st.composite
def max_roi_pool_cases(draw):
    ph, pw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    scale = draw(st.sampled_from([1.0, 0.5, 0.25]))
    rows = []
    for _ in range(draw(st.integers(1, 3))):
        row = []
        for p in (ph, pw):
            # Extents ONNX and NNEF cut alike: a multiple of p, or any extent when p <= 2.
            extent = draw(st.integers(1, 9)) if p <= 2 else p * draw(st.integers(1, 3))
            start = draw(st.integers(1, 3))
            # Offsets that round back to the integer (start - 0.5 rounds up).
            row.append([(start + draw(st.sampled_from([-0.5, -0.25, 0, 0.25, 0.375]))) / scale,
                        (start + extent - 1 + draw(st.sampled_from([-0.5, 0, 0.25]))) / scale])
        rows.append([row[1][0], row[0][0], row[1][1], row[0][1]])  # ONNX: x1, y1, x2, y2
    return ph, pw, scale, np.array(rows, np.float32), draw(seeds)


@FEW
@given(max_roi_pool_cases())
def test_max_roi_pool_matches_onnx_max_roi_pool(case):
    ph, pw, scale, onnx_rows, seed = case
    rng = np.random.default_rng(seed)
    x = randn(rng, 2, 3, 16, 16)
    index = rng.integers(0, 2, len(onnx_rows))
    want = ort("MaxRoiPool", x, np.concatenate([index[:, None], onnx_rows], axis=1).astype(np.float32),
               pooled_shape=[ph, pw], spatial_scale=scale)
    # NNEF: scaled coordinates, rows (y0, x0, y1, x1), the end one past ONNX's inclusive end.
    rois = _onnx_rows(onnx_rows * np.float32(scale)) + np.array([0, 0, 1, 1], np.float32)
    got = KERNELS["max_roi_pool"](x, rois, index, [ph, pw])
    assert got.dtype == np.float32
    close(got, want)


# ---- argument checks and the interpreter --------------------------------------------------------


def test_roi_kernels_check_their_operands():
    x = np.zeros((2, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="rois"):
        KERNELS["roi_resample"](x, np.zeros((1, 3), np.float32), np.array([0]), [2, 2])
    with pytest.raises(ValueError, match="batch_index"):
        KERNELS["avg_roi_pool"](x, np.zeros((1, 4), np.float32), np.array([2]), [2, 2])
    with pytest.raises(ValueError, match="batch_index"):
        KERNELS["max_roi_pool"](x, np.zeros((2, 4), np.float32), np.array([0]), [2, 2])
    with pytest.raises(ValueError, match="method"):
        KERNELS["roi_resample"](x, np.zeros((1, 4), np.float32), np.array([0]), [2, 2], method="cubic")


GRAPH = """version 1.0;

graph G( input, rois, index ) -> ( pooled, resampled, averaged, maximum )
{
    input = external<scalar>(shape = [2, 3, 6, 5]);
    rois = external<scalar>(shape = [3, 4]);
    index = external<integer>(shape = [3]);
    pooled = max_roi_pool(input, rois, index, output_size = [2, 3]);
    resampled = roi_resample(input, rois, index, output_size = [3, 2], method = 'aligned');
    averaged = avg_roi_align(input, rois, index, output_size = [2, 2], sampling_rate = [2, 1]);
    maximum = max_roi_align(input, rois, index, output_size = [1, 2], sampling_rate = [3, 2]);
}
"""


def test_roi_operations_run_in_a_graph(tmp_path: Path):
    # Wiring: the interpreter finds the kernels (the align bodies alone could not run).
    (tmp_path / "graph.nnef").write_text(GRAPH)
    rng = np.random.default_rng(3)
    rois = np.array([[0, 0, 6, 5], [1, 2, 4.5, 3], [2, 1, 3, 4]], np.float32)
    inputs = {"input": randn(rng, 2, 3, 6, 5), "rois": rois, "index": np.array([1, 0, 1], np.int32)}
    outputs = nnefopt.run(nnefopt.load(tmp_path), inputs)
    x, rois, index = inputs.values()
    close(outputs["pooled"], KERNELS["max_roi_pool"](x, rois, index, [2, 3]))
    close(outputs["resampled"], KERNELS["roi_resample"](x, rois, index, [3, 2], method="aligned"))
    close(outputs["averaged"], KERNELS["avg_roi_align"](x, rois, index, [2, 2], [2, 1]))
    close(outputs["maximum"], KERNELS["max_roi_align"](x, rois, index, [1, 2], [3, 2]))
