"""Networks on MXNet, in process: what gets built against the plan, padding and pooling against
numpy loops, training against known answers, a resumed run against an uninterrupted one, and
the exports against onnxruntime and MXNet's own loader."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from mxconv import layers as L
from mxconv_server.compute import export, netjob, netplan, nettrain, network
from mxconv_server.compute.mx import mxnet as mx
from mxconv_server.compute.mx import nd

from . import oracle

CTX = mx.cpu()


def dump(net: list) -> list[dict]:
    return [layer.model_dump() for layer in net]


def every_2d_layer() -> list:
    return [
        L.Conv2d(channels=4, kernel_size=3, padding=[0, 2, 1, 0], padding_mode="reflect"),
        L.BatchNorm(), L.ReLU(),
        L.Conv2d(channels=4, kernel_size=[2, 3], padding="same", padding_mode="circular", groups=2),
        L.MaxPool2d(pool_size=2, padding=1),
        L.Conv2d(channels=6, kernel_size=2, dilation=2, padding=1, padding_mode="symmetric"), L.Sigmoid(),
        L.Conv2d(channels=3, kernel_size=1, padding=[1, 0, 0, 1], padding_mode="replicate"), L.Tanh(),
        L.AvgPool2d(pool_size=[2, 1], stride=[1, 1]),
        L.Flatten(), L.Dropout(rate=0.4), L.Dense(units=7), L.ReLU(), L.Dense(units=3, bias=False),
    ]  # fmt: skip


def every_1d_layer() -> list:
    return [
        L.Conv1d(channels=3, kernel_size=4, padding="same", padding_mode="symmetric"), L.ReLU(),
        L.MaxPool1d(pool_size=3, stride=2, padding=1), L.BatchNorm(),
        L.Conv1d(channels=2, kernel_size=3, dilation=2, padding=[3, 0], padding_mode="reflect"),
        L.AvgPool1d(pool_size=2), L.Flatten(), L.Dense(units=2),
    ]  # fmt: skip


@pytest.mark.parametrize(("net", "sample"), [(every_2d_layer(), [2, 9, 7]), (every_1d_layer(), [2, 21])])
def test_what_mxnet_builds_is_what_was_planned(net: list, sample: list) -> None:
    plan = netplan.plan_network(dump(net), sample)
    block = network.build(plan)
    network.initialize(block, 0, CTX)
    h = nd.array(np.random.default_rng(0).standard_normal((2, *sample)), ctx=CTX)
    for lp, child in zip(plan.layers, block, strict=True):
        h = child(h)
        assert tuple(h.shape[1:]) == lp.out_shape, (lp.index, lp.type, h.shape)
    params = network.param_names(block)
    assert sorted(params) == sorted(f"{lp.index}.{n}" for lp in plan.layers for n in lp.param_shapes)
    for lp in plan.layers:
        for name, shape in lp.param_shapes.items():
            assert tuple(params[f"{lp.index}.{name}"].shape) == shape
    learned = sum(p.data().size for n, p in params.items() if not n.split(".")[1].startswith("running_"))
    assert learned == plan.params


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular", "symmetric"])
@pytest.mark.parametrize("pads", [[1, 1, 2, 2], [0, 2, 1, 0], [2, 0, 0, 3]])
def test_a_conv_layer_pads_as_numpy_does(mode: str, pads: list) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    spec = L.Conv2d(channels=4, kernel_size=[3, 2], padding=pads, padding_mode=mode, stride=[1, 2])
    plan = netplan.plan_network(dump([spec]), [3, 6, 5])
    net = network.ready(plan, {"0.weight": w, "0.bias": b}, CTX)
    got = network.predict(net, x, CTX)
    want = oracle.conv2d(x, w, b, stride=(1, 2), pads=tuple(pads), padding_mode=mode)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_a_conv1d_layer_pads_as_numpy_does() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 9)).astype(np.float32)
    w = rng.standard_normal((3, 2, 4)).astype(np.float32)
    plan = netplan.plan_network(
        dump([L.Conv1d(channels=3, kernel_size=4, padding=[3, 1], padding_mode="reflect", bias=False)]),
        [2, 9],
    )
    assert plan.layers[0].param_shapes["weight"] == (3, 2, 1, 4)  # conv2d's, with height 1
    got = network.predict(network.ready(plan, {"0.weight": w[:, :, None, :]}, CTX), x, CTX)
    want = oracle.conv2d(x[:, :, None, :], w[:, :, None, :], pads=(0, 0, 3, 1), padding_mode="reflect")
    np.testing.assert_allclose(got, want[:, :, 0, :], atol=1e-4)


def _pool_oracle(x: np.ndarray, k: tuple, s: tuple, p: tuple, kind: str) -> np.ndarray:
    n, c, h, w = x.shape
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=fill)
    ho, wo = (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1
    y = np.zeros((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            win = xp[:, :, i * s[0] : i * s[0] + k[0], j * s[1] : j * s[1] + k[1]]
            y[:, :, i, j] = win.max(axis=(2, 3)) if kind == "max" else win.sum(axis=(2, 3)) / (k[0] * k[1])
    return y


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_as_numpy_loops(kind: str) -> None:
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 8)).astype(np.float32)
    cls = L.MaxPool2d if kind == "max" else L.AvgPool2d
    plan = netplan.plan_network(dump([cls(pool_size=[3, 2], stride=[2, 3], padding=[1, 1])]), [3, 7, 8])
    got = network.predict(network.ready(plan, {}, CTX), x, CTX)
    np.testing.assert_allclose(got, _pool_oracle(x, (3, 2), (2, 3), (1, 1), kind), atol=1e-5)


def stripes(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy 8x8 images of horizontal (0), vertical (1) or diagonal (2) stripes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    i, j = np.mgrid[0:8, 0:8]
    pattern = [(i % 2 == 0), (j % 2 == 0), ((i + j) % 2 == 0)]
    x = np.stack([pattern[c].astype(np.float32) for c in labels])[:, None]
    return (x + 0.3 * rng.standard_normal(x.shape)).astype(np.float32), labels.astype(np.float32)


SMALL_CNN = [L.Conv2d(channels=4, kernel_size=3, padding=1), L.BatchNorm(), L.ReLU(), L.MaxPool2d(),
             L.Flatten(), L.Dropout(rate=0.2), L.Dense(units=3)]  # fmt: skip


def test_a_small_cnn_learns_the_stripes() -> None:
    x, y = stripes(240)
    plan = netjob.plan_network_job(x.shape, y.shape, dump(SMALL_CNN), loss="softmax_cross_entropy",
                                   batch_size=16, validation_split=0.25)  # fmt: skip
    assert (plan.n_train, plan.n_val, plan.classes) == (180, 60, 3)
    seen: list[nettrain.NetEpoch] = []
    cfg = nettrain.NetTrainConfig(optimizer="adam", learning_rate=0.01, epochs=8, seed=0)
    result = nettrain.train_network(x, y, cfg, plan, on_epoch=seen.append)
    assert [e.epoch for e in seen] == list(range(1, 9))
    assert seen[-1].metrics["val_accuracy"] == 1.0 and result.metrics["accuracy"] > 0.95
    assert seen[-1].metrics["val_loss"] < seen[0].metrics["val_loss"]
    # the validation split is the seeded permutation's first quarter, never trained on
    train_idx, val_idx = nettrain.split(240, 60, 0)
    assert len(set(train_idx) | set(val_idx)) == 240 and not set(train_idx) & set(val_idx)


def test_a_one_layer_network_learns_the_seeds_kernel() -> None:
    x = np.ones((1, 1, 6, 6), dtype=np.float32)
    x[..., 2:4] = 0
    y = oracle.corr2d(x[0, 0], np.array([[1.0, -1.0]]))[None, None].astype(np.float32)
    plan = netjob.plan_network_job(
        x.shape, y.shape, dump([L.Conv2d(channels=1, kernel_size=[1, 2])]), loss="l2"
    )
    cfg = nettrain.NetTrainConfig(optimizer="adam", learning_rate=0.05, epochs=300, seed=0)
    result = nettrain.train_network(x, y, cfg, plan)
    np.testing.assert_allclose(result.weights["0.weight"].ravel(), [1.0, -1.0], atol=1e-3)
    assert result.data_loss < 1e-6


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(optimizer: str) -> None:
    x, y = stripes(96, seed=1)
    plan = netjob.plan_network_job(x.shape, y.shape, dump(SMALL_CNN), loss="softmax_cross_entropy",
                                   batch_size=16, validation_split=0.25)  # fmt: skip
    cfg = nettrain.NetTrainConfig(
        optimizer=optimizer, learning_rate=0.01, epochs=30, seed=7, checkpoint_every=10
    )
    saved: dict[int, nettrain.Resume] = {}
    full = nettrain.train_network(
        x,
        y,
        cfg,
        plan,
        on_checkpoint=lambda e, meta, arrays: saved.setdefault(e.epoch, nettrain.Resume(meta, arrays)),
    )
    assert sorted(saved) == [10, 20]  # none after the last epoch: the model itself is stored then
    assert all("/" not in k or k.startswith(("p/", "s/")) for k in saved[20].arrays)
    resumed = nettrain.train_network(x, y, cfg, plan, resume=saved[10])
    assert resumed.resumed_from == 10 and resumed.epochs_run == 30 and len(resumed.losses) == 20
    assert resumed.losses == full.losses[10:]
    for name, w in full.weights.items():
        np.testing.assert_allclose(resumed.weights[name], w, rtol=0, atol=1e-5, err_msg=name)


def _exportable(net: list, sample: list, seed: int = 0) -> tuple[netplan.NetworkPlan, dict, np.ndarray]:
    plan = netplan.plan_network(dump(net), sample)
    block = network.build(plan)
    network.initialize(block, seed, CTX)
    # Batchnorm with running statistics other than 0 and 1, so predicting uses them.
    for name, p in network.param_names(block).items():
        if name.endswith(("running_mean", "running_var", "gamma", "beta")):
            p.set_data(nd.array(np.random.default_rng(seed).uniform(0.5, 1.5, p.shape), ctx=CTX))
    x = np.random.default_rng(seed + 1).standard_normal((5, *sample)).astype(np.float32)
    return plan, network.weights(block), x


@pytest.mark.parametrize(("net", "sample"), [(every_2d_layer(), [2, 9, 7]), (every_1d_layer(), [2, 21])])
def test_onnx_export_runs_in_onnxruntime_as_in_mxnet(net: list, sample: list) -> None:
    ort = pytest.importorskip("onnxruntime")
    plan, weights, x = _exportable(net, sample)
    want = network.predict(network.ready(plan, weights, CTX), x, CTX)
    onnx = pytest.importorskip("onnx")
    model = export.onnx_model(plan, weights)
    graph = onnx.load_from_string(model).graph
    assert [i.name for i in graph.input] == ["data"] and len(graph.initializer) >= len(weights)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.shape[1:] == sample  # the batch axis is free
    got = session.run(None, {inp.name: x})[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    one = session.run(None, {inp.name: x[:1]})[0]
    np.testing.assert_allclose(one, want[:1], rtol=0, atol=1e-5)


def test_the_mxnet_export_loads_back_with_symbolblock(tmp_path) -> None:
    plan, weights, x = _exportable(every_2d_layer(), [2, 9, 7])
    data = export.mxnet_zip(plan, weights, {"network": dump(every_2d_layer())})
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert sorted(z.namelist()) == sorted([export.SYMBOL, export.PARAMS, export.SPEC])
        z.extractall(tmp_path)
        assert b"pickle" not in z.read(export.PARAMS)[:64]
    block = mx.gluon.SymbolBlock.imports(
        str(tmp_path / export.SYMBOL), ["data"], str(tmp_path / export.PARAMS), ctx=CTX
    )
    got = block(nd.array(x, ctx=CTX)).asnumpy()
    np.testing.assert_allclose(
        got, network.predict(network.ready(plan, weights, CTX), x, CTX), rtol=0, atol=1e-6
    )
