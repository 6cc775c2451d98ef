"""Modules own their weights: a process that loads, optimizes and drops model after
model stays at the size it reached with the first ones."""

from __future__ import annotations

import gc
import itertools
import os
import warnings
import weakref

import nnefopt
from nnefopt.dialects.weights import weight_of
from nnefopt.errors import NNEFWarning
from tests.models import SHARED

# The small models, in every form they come in (a folder's weights memory-mapped, an
# archive's read), some quantized.
SMALL = [SHARED / "mlp_digits" / "kt", SHARED / "mlp_digits" / "tract.nnef.tgz", SHARED / "cnn_digits" / "t2n",
         SHARED / "cnn_digits" / "kt", SHARED / "cnn_digits_q8" / "tract.nnef.tgz", SHARED / "tiny_unet" / "kt"]


def resident_bytes() -> int:
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def load_optimize_drop(path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        module = nnefopt.optimize(nnefopt.load(path), "default")
    nnefopt.to_mlir(module, weights=True)  # printing declares blobs to xDSL: they must go too
    module.verify()


def test_two_hundred_models_keep_memory_where_ten_left_it():
    models = itertools.cycle(SMALL)
    for path in itertools.islice(models, 10):
        load_optimize_drop(path)
    after_ten = resident_bytes()
    for path in itertools.islice(models, 190):
        load_optimize_drop(path)
    after_two_hundred = resident_bytes()
    assert after_two_hundred <= 1.10 * after_ten, (after_ten, after_two_hundred)


def test_the_weights_of_a_dropped_module_are_freed():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NNEFWarning)
        module = nnefopt.optimize(nnefopt.load(SHARED / "resnet8" / "t2n"), "default")
    clone = module.clone()
    arrays = [weakref.ref(weight_of(op.attributes["nnef.data"])) for op in module.walk() if "nnef.data" in op.attributes]
    assert arrays and all(ref() is not None for ref in arrays)
    del module
    gc.collect()
    assert all(ref() is not None for ref in arrays)  # the clone refers to them
    del clone
    gc.collect()
    assert [ref() for ref in arrays if ref() is not None] == []
