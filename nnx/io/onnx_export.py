"""ONNX export of a finalized model's inference graph (`Model.export_onnx`, ``nnx export``), built with the `onnx`
package's own helpers (the ``onnx`` extra) and checked with its checker before the file is written, atomically.

Each layer adds its own nodes through its `to_onnx(graph, inputs)` method: Dense a `Gemm`, ReLU, Sigmoid, Softmax
and Linear their ONNX ops, Dropout nothing (inference keeps every input). A layer of your own exports once its class
has that method (see "Write a layer, loss or optimizer" in the docs). The opset is 17: every runtime released since
2022 reads it, and the ops nnx uses have kept their meaning since opset 13.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nnx import _checks
from nnx._component import FilePath
from nnx._paths import atomic_write, output_path
from nnx._version import __version__
from nnx.activations import Sigmoid, Softmax
from nnx.backends._host import dtype_name

OPSET = 17
IR_VERSION = 8  # the IR version that came with opset 17: runtimes from that release on read the file
INPUT_NAME = "inputs"
OUTPUT_NAME = "outputs"
INSTALL_HINT = 'exporting to ONNX needs the onnx package: pip install "nnx-nnfs[onnx]"'
OWNER = "Model.export_onnx"
HOW_TO_EXPORT = (
    "give its class a method to_onnx(self, graph, inputs) that adds its nodes with graph.node(...) (and its arrays "
    "with graph.constant(...)) and returns the name of its output; see 'Write a layer, loss or optimizer' in the docs"
)


class OnnxGraph:
    """The ONNX graph of a model being exported: what a layer's ``to_onnx(graph, inputs)`` adds its nodes to.

    Names of values are strings: ``graph.node`` returns its output's name, ``graph.constant`` the name of a stored
    array. Both make every name unique, so a layer need not know its neighbours' names.

    Args:
        backend: the model's Backend (arrays are copied to the host through it).
        dtype: the model's float dtype name, 'float32' or 'float64'.

    Attributes:
        dtype: the model's float dtype name; `constant` stores arrays in it unless told otherwise.
        opset: the ONNX opset version of the file.
    """

    def __init__(self, backend: Any, dtype: str) -> None:
        self.backend = backend
        self.dtype = dtype
        self.opset = OPSET
        self.onnx = _checks.extra_module("onnx", INSTALL_HINT)
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.names: set[str] = {INPUT_NAME}

    def node(self, op_type: str, inputs: Sequence[str], *, name: str | None = None, **attributes: Any) -> str:
        """Add one node of an ONNX operator and return the name of its output.

        Args:
            op_type: the operator's name in the default domain, e.g. "Relu", "Gemm", "LeakyRelu".
            inputs: the names of its inputs: values earlier nodes or `constant` returned, or the graph's input.
            name: a hint for the output's name; None names it after the operator.
            **attributes: the operator's attributes, e.g. ``alpha=0.01`` or ``axis=-1``.

        Returns:
            The unique name of the node's output.

        Raises:
            TypeError: `op_type` is not a string.
            ValueError: an input is not a value of this graph.
        """
        if not isinstance(op_type, str) or not op_type:
            raise TypeError(f"OnnxGraph.node: op_type must be an operator name such as 'Relu', got {op_type!r}")
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        unknown = [value for value in inputs if value not in self.names]
        if unknown:
            raise ValueError(
                f"OnnxGraph.node({op_type!r}): {', '.join(map(repr, unknown))} is not a value of this graph; pass the "
                f"inputs argument of to_onnx, or a name that graph.node or graph.constant returned"
            )
        output = self._fresh(name or op_type.lower())
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [output], name=output, **attributes))
        return output

    def constant(self, value: Any, *, name: str | None = None, dtype: str | None = None) -> str:
        """Store an array (a layer's parameter, or a number) in the file and return its name.

        Args:
            value: an array of the model's backend, host data (a NumPy array, a list) or a Python number.
            name: a hint for its name; None names it "constant".
            dtype: the dtype to store it in; None is the model's float dtype (`graph.dtype`).

        Returns:
            The unique name of the stored array.
        """
        host = self.backend.to_numpy(self.backend.asarray(value))
        host = host.astype(dtype or self.dtype, copy=False)
        stored = self._fresh(name or "constant")
        self.initializers.append(self.onnx.numpy_helper.from_array(host, stored))
        return stored

    def _fresh(self, hint: str) -> str:
        name, count = hint, 1
        while name in self.names or name == OUTPUT_NAME:
            count += 1
            name = f"{hint}_{count}"
        self.names.add(name)
        return name

    def _proto(self, last: str, widths: tuple[int | None, int | None], metadata: dict[str, str], doc: str) -> Any:
        """The finished ModelProto: its input, `last` renamed as its output, and the metadata."""
        helper, element = self.onnx.helper, self._element_type()
        if any(last in node.output for node in self.nodes):
            for node in self.nodes:
                node.output[:] = [OUTPUT_NAME if value == last else value for value in node.output]
                node.input[:] = [OUTPUT_NAME if value == last else value for value in node.input]
        else:  # the graph's input itself (a model of Dropout only) or a stored array
            self.nodes.append(helper.make_node("Identity", [last], [OUTPUT_NAME], name=OUTPUT_NAME))
        graph = helper.make_graph(
            self.nodes,
            "nnx_model",
            [helper.make_tensor_value_info(INPUT_NAME, element, ["batch", widths[0] or "features"])],
            [helper.make_tensor_value_info(OUTPUT_NAME, element, ["batch", widths[1] or "outputs"])],
            initializer=self.initializers,
        )
        proto = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", self.opset)],
            producer_name="nnx",
            producer_version=__version__,
            doc_string=doc,
        )
        proto.ir_version = IR_VERSION
        helper.set_model_props(proto, metadata)
        return proto

    def _element_type(self) -> int:
        return {"float32": self.onnx.TensorProto.FLOAT, "float64": self.onnx.TensorProto.DOUBLE}[self.dtype]


def export_onnx(model: Any, path: FilePath, *, overwrite: bool = False, summary: str = "") -> Path:
    """Write `model`'s inference graph to `path` as an ONNX file, checked by ONNX's checker (`Model.export_onnx`).

    Args:
        model: a finalized Model, on any backend.
        path: the file to write, ending in .onnx; it is replaced in one step.
        overwrite: whether to replace an existing file.
        summary: the text stored as the file's "summary" metadata (`Model.export_onnx` gives the model's summary).

    Returns:
        The absolute path written.

    Raises:
        CallOrderError: the model is not finalized.
        FileExistsError: the file exists and `overwrite` is False.
        ImportError: the `onnx` package is not installed.
        TypeError: a layer has no `to_onnx` method, or it returned something other than a value's name.
        ValueError: the path cannot be written, or a layer's nodes are not valid ONNX.
    """
    model._require()
    target = _target(path, overwrite)
    graph = OnnxGraph(model.backend, model_dtype(model))
    last = INPUT_NAME
    for position, layer in enumerate(model.layers):
        last = _exported(layer, position, graph, last)
    proto = graph._proto(last, widths(model), metadata(model, graph.dtype, summary), repr(model))
    try:
        graph.onnx.checker.check_model(proto, full_check=True)
    except (graph.onnx.checker.ValidationError, graph.onnx.shape_inference.InferenceError) as error:
        raise ValueError(
            f"{OWNER}: the graph is not valid ONNX ({' '.join(str(error).split())[:400]}); a to_onnx method of one "
            f"of your layers made a node that ONNX does not accept"
        ) from None
    atomic_write(target, proto.SerializeToString())
    return target


def _target(path: FilePath, overwrite: bool) -> Path:
    if not isinstance(overwrite, bool):
        raise TypeError(f"{OWNER}: overwrite must be True or False, got {overwrite!r}")
    target = output_path(path, OWNER, suffixes=(".onnx",), what="file")
    if not overwrite and os.path.lexists(target):
        raise FileExistsError(
            f"{OWNER}: {str(target)!r} exists already; pass overwrite=True to replace it, or choose another name"
        )
    return target


def _exported(layer: Any, position: int, graph: OnnxGraph, inputs: str) -> str:
    """The output name of `layer`'s nodes, added by its `to_onnx`; a layer without one (or with another class's,
    while it computes its own forward) is refused, naming it."""
    method = getattr(type(layer), "to_onnx", None)
    if method is None:
        raise TypeError(f"{OWNER}: layer {position}, {layer!r}, has no ONNX export; {HOW_TO_EXPORT}")
    exporter, computer = _owner(type(layer), "to_onnx"), _owner(type(layer), "forward")
    if computer is not exporter and issubclass(computer, exporter):
        raise TypeError(
            f"{OWNER}: layer {position}, {layer!r}, computes its own forward but would export as "
            f"{exporter.__name__}; {HOW_TO_EXPORT.replace('give its class', f'give {computer.__name__}')}"
        )
    output = layer.to_onnx(graph, inputs)
    if not isinstance(output, str) or output not in graph.names:
        raise TypeError(
            f"{OWNER}: layer {position}, {layer!r}: to_onnx returned {output!r}, not the name of a value of the graph; "
            f"return what graph.node(...) returned (or inputs, for a layer that changes nothing at inference)"
        )
    return output


def _owner(cls: type, name: str) -> type:
    """The class in `cls`'s MRO that defines `name` (`object` when none does)."""
    return next((klass for klass in cls.__mro__ if name in vars(klass)), object)


def model_dtype(model: Any) -> str:
    """The model's float dtype name: its first parameter's, else its backend's default."""
    layer = next((layer for layer in model.layers if getattr(layer, "weights", None) is not None), None)
    return dtype_name(layer.weights.dtype if layer is not None else model.backend.default_float)


def widths(model: Any) -> tuple[int | None, int | None]:
    """(input features, outputs) as the layers declare them (`n_inputs`, `n_neurons`); None where none does."""
    sized = [layer for layer in model.layers if isinstance(getattr(layer, "n_neurons", None), int)]
    first = getattr(sized[0], "n_inputs", None) if sized else None
    return (first if isinstance(first, int) else None), (sized[-1].n_neurons if sized else None)


def metadata(model: Any, dtype: str, summary: str) -> dict[str, str]:
    """The file's metadata: nnx's version, the summary, the dtype, what the output means and the class count."""
    last, outputs = model.layers[-1], widths(model)[1]
    props = {
        "nnx_version": __version__,
        "summary": summary,
        "dtype": dtype,
        "output": "values (regression)",
        "epochs_trained": str(model.epochs_trained),
    }
    if isinstance(last, Softmax):
        props["output"] = "class probabilities"
        props["classes"] = str(outputs or "")
    elif isinstance(last, Sigmoid):
        props["output"] = "probabilities of independent binary classes (one per output)"
        props["classes"] = "2"
    return props
