"""A training run's state as plain arrays and JSON, and back: never pickle.

Gluon's own ``Trainer.save_states`` pickles the optimizer's updater, so the state is read out
here instead: every parameter (batchnorm's running statistics too) as ``p/<name>``, and each
optimizer state array (Adam's mean and variance, SGD's momentum) as ``s/<name>/<k>``, plus the
optimizer's update counts, which Adam's bias correction reads, as JSON. Restoring them into a
fresh network and trainer continues the run exactly: with the batch order and the dropout
masks drawn per epoch from the seed (:mod:`.nettrain`), a run resumed after epoch 50 ends
with the same weights, bit for bit, as one never interrupted.

This touches MXNet 1.9.1's ``Trainer`` and ``Updater`` internals (``_updaters``,
``states``, ``_optimizer._index_update_count``), and only here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .mx import nd
from .network import param_names


def _updater(trainer: Any) -> Any:
    if not trainer._kv_initialized:  # the first step sets it up; a restore comes before it
        trainer._init_kvstore()
    if trainer._update_on_kvstore or len(trainer._updaters) != 1:
        raise RuntimeError("checkpoints need one device and updates in the trainer (no kvstore)")
    return trainer._updaters[0]


def capture(net: Any, trainer: Any) -> tuple[dict[str, Any], dict[str, npt.NDArray[np.float32]]]:
    """The run's weights and optimizer state: (its JSON part, its arrays)."""
    params = param_names(net)
    index = {id(p): i for i, p in enumerate(trainer._params)}
    by_index = {index[id(p)]: name for name, p in params.items() if id(p) in index}
    arrays = {f"p/{name}": p.data().asnumpy().astype(np.float32) for name, p in params.items()}
    states: dict[str, int | None] = {}
    for i, state in _updater(trainer).states.items():
        name = by_index[int(i)]
        parts = state if isinstance(state, (tuple, list)) else (state,)
        if any(s is None for s in parts):
            states[name] = None
            continue
        states[name] = len(parts)
        for k, s in enumerate(parts):
            arrays[f"s/{name}/{k}"] = s.asnumpy().astype(np.float32)
    opt = trainer._optimizer
    meta = {
        "optimizer": {
            "name": type(opt).__name__.lower(),
            "num_update": int(opt.num_update),
            "update_counts": {by_index[int(i)]: int(n) for i, n in opt._index_update_count.items()},
            "states": states,
        }
    }
    return meta, arrays


def restore(
    net: Any, trainer: Any, meta: Mapping[str, Any], arrays: Mapping[str, npt.NDArray[Any]], ctx: Any
) -> None:
    """Put a :func:`capture` back into a network and trainer built the same way."""
    params = param_names(net)
    for name, p in params.items():
        p.set_data(nd.array(arrays[f"p/{name}"], ctx=ctx, dtype="float32"))
    index = {id(p): i for i, p in enumerate(trainer._params)}
    opt_meta = meta["optimizer"]
    updater = _updater(trainer)
    for name, count in opt_meta["states"].items():
        i = index[id(params[name])]
        if count is None:
            updater.states[i] = None
        else:
            parts = tuple(nd.array(arrays[f"s/{name}/{k}"], ctx=ctx, dtype="float32") for k in range(count))
            updater.states[i] = parts if count > 1 else parts[0]
        updater.states_synced[i] = True
    opt = trainer._optimizer
    opt._index_update_count.clear()
    opt._index_update_count.update(
        {index[id(params[n])]: int(c) for n, c in opt_meta["update_counts"].items()}
    )
    opt.num_update = int(opt_meta["num_update"])
