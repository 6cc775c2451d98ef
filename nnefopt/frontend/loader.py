"""Opening a model: folder, graph.nnef, or archive → Model with weights and shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnefopt.errors import Location, NNEFError
from nnefopt.frontend.builder import GraphBuilder
from nnefopt.frontend.bundle import open_model
from nnefopt.frontend.model import Model
from nnefopt.frontend.parser import parse_document, parse_quant, read_text
from nnefopt.frontend.shape_inference import infer_shapes
from nnefopt.frontend.tensor_file import TensorHeader, read_tensor_file


def load_model(path: str | Path, *, strict: bool = False, shapes: bool = True) -> Model:
    """Read a model; `strict` refuses the liberties torch-to-nnef and tract take."""
    with open_model(path) as source:
        graph_name = source.display(source.graph_path)
        doc = parse_document(read_text(source.graph_path, graph_name), graph_name)

        def load_tensor(label: str, shape: tuple, loc: Location) -> tuple[TensorHeader, np.ndarray, str, Path | None]:
            file = source.tensor_path(label)
            name = source.display(file)
            if not file.is_file():
                raise NNEFError(f"tensor file '{name}' of variable '{label}' not found", loc)
            # Messages name the file as the user knows it; a file that stays can be copied on export.
            return *read_tensor_file(file, name=name), name, file.resolve() if source.lasting else None

        builder = GraphBuilder(doc, load_tensor, strict)
        model = builder.build()
        if source.quant_path is not None:
            quant_name = source.display(source.quant_path)
            builder.attach_quantization(parse_quant(read_text(source.quant_path, quant_name), quant_name))
    if shapes:
        infer_shapes(model, strict)
    return model
