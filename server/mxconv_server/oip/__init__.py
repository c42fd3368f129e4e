"""/v2: the Open Inference Protocol (KServe's v2 protocol, as Triton serves it over HTTP).

tritonclient, KServe and the other tools that speak it work against mxconv unchanged. The models
are mxconv's compute operations (``ops.registry()``): conv2d, conv1d, corr2d, channel_mix and
image_filter, their inputs under their /v1 names and every other option a request parameter.

Nothing is done twice: a request is read by the same transport as /v1's (``transport.body``
buffers it under the same limits; ``codec.bytes_response`` sends binary outputs without a
copy), validated by the operation's own /v1 request model, and computed through the same
``api.compute.compute`` (input sizes, plan, budgets, deadline, metrics). What is the protocol's
own is here: its JSON objects (``schemas``), its two tensor forms (``tensors``), the model table
(``models``) and its endpoints (``views``). Errors take its shape, ``{"error": "<message>"}``
(``errors.py`` chooses the shape by the route).
"""

from __future__ import annotations

from .views import bp

__all__ = ["bp"]
