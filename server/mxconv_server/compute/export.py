"""A trained network out of the service: MXNet's own files (symbol JSON and params) in a
.zip, or ONNX through ``mxnet.onnx.export_model``. Neither is pickled: the params file is
MXNet's binary NDArray format, ONNX is protobuf.

Both take the batch size as free: the ONNX graph's input is ``[N, *sample]`` with N dynamic.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from . import network
from .mx import mxnet as mx
from .mx import nd
from .netplan import NetworkPlan

#: The .zip's members: what MXNet's ``HybridBlock.export`` writes, and the spec it came from.
SYMBOL, PARAMS, SPEC = "model-symbol.json", "model-0000.params", "spec.json"


@contextlib.contextmanager
def _quiet() -> Any:
    """mxnet.onnx logs every export step at INFO on the root logger: not into the service's log."""
    before = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(before)


def _exported(plan: NetworkPlan, weights: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    ctx = mx.cpu()
    net = network.ready(plan, weights, ctx)
    net(nd.zeros((1, *plan.input_shape), ctx=ctx))  # a forward pass builds the graph to export
    net.export(str(folder / "model"), epoch=0)
    return folder / SYMBOL, folder / PARAMS


def mxnet_zip(plan: NetworkPlan, weights: dict[str, Any], spec: dict[str, Any]) -> bytes:
    """``model-symbol.json`` and ``model-0000.params`` (load them with
    ``mxnet.gluon.SymbolBlock.imports("model-symbol.json", ["data"], "model-0000.params")``),
    and ``spec.json``: the network, its input shape and how it was trained."""
    with tempfile.TemporaryDirectory(prefix="mxconv-export-") as tmp:
        symbol, params = _exported(plan, weights, Path(tmp))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.write(symbol, SYMBOL)
            z.write(params, PARAMS)
            z.writestr(SPEC, json.dumps({**spec, "input_shape": list(plan.input_shape)}, indent=2))
        return buf.getvalue()


def onnx_model(plan: NetworkPlan, weights: dict[str, Any]) -> bytes:
    """The network as ONNX (the newest opset the installed onnx knows), its input ``data`` of
    shape [N, *sample], N free. mxnet.onnx lists the weights among the graph's inputs too;
    they are taken out (they are initializers, constants to a runtime), so ``data`` is its one
    input and onnxruntime can fold them."""
    import onnx
    from mxnet import onnx as mx_onnx

    with tempfile.TemporaryDirectory(prefix="mxconv-onnx-") as tmp:
        symbol, params = _exported(plan, weights, Path(tmp))
        out = Path(tmp) / "model.onnx"
        with warnings.catch_warnings(), _quiet():
            warnings.simplefilter("ignore")
            mx_onnx.export_model(
                str(symbol),
                str(params),
                [(1, *plan.input_shape)],
                [np.float32],
                str(out),
                dynamic=True,
                dynamic_input_shapes=[(None, *plan.input_shape)],
            )
        model = onnx.load(str(out))
    weights = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
