"""compute.netplan against published numbers and hand computation: no MXNet involved.

Oracles: VGG-16's receptive fields and parameter count as published (Simonyan & Zisserman
2014, Table 2: 138M parameters; the receptive-field table of Araujo, Norris & Sim, "Computing
Receptive Fields of Convolutional Neural Networks", Distill 2019: conv5_3 196, pool5 212),
LeNet-5's 61,706 parameters (LeCun et al. 1998, as torchvision-style reimplementations count
them with dense layers for C5), and a LeNet for 8x8 digits worked out by hand below.
"""

from __future__ import annotations

import pytest
from mxconv import layers as L
from mxconv_server.compute.errors import InvalidArgument
from mxconv_server.compute.netplan import plan_network, summary


def dump(network: list) -> list[dict]:
    return [layer.model_dump() for layer in network]


def vgg16() -> list:
    net: list = []
    for convs, channels in ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)):
        for _ in range(convs):
            net += [L.Conv2d(channels=channels, kernel_size=3, padding=1), L.ReLU()]
        net.append(L.MaxPool2d(pool_size=2))
    net += [L.Flatten(), L.Dense(units=4096), L.ReLU(), L.Dropout(), L.Dense(units=4096), L.ReLU()]
    return [*net, L.Dropout(), L.Dense(units=1000)]


#: (layer name, receptive field) down VGG-16, from the Distill article's table.
VGG16_FIELDS = [
    ("conv1_1", 3), ("conv1_2", 5), ("pool1", 6),
    ("conv2_1", 10), ("conv2_2", 14), ("pool2", 16),
    ("conv3_1", 24), ("conv3_2", 32), ("conv3_3", 40), ("pool3", 44),
    ("conv4_1", 60), ("conv4_2", 76), ("conv4_3", 92), ("pool4", 100),
    ("conv5_1", 132), ("conv5_2", 164), ("conv5_3", 196), ("pool5", 212),
]  # fmt: skip


def test_vgg16_receptive_fields_and_parameters_match_the_published_tables() -> None:
    plan = plan_network(dump(vgg16()), [3, 224, 224])
    spatial = [lp for lp in plan.layers if lp.type in ("conv2d", "maxpool2d")]
    assert [lp.field.size for lp in spatial] == [(rf, rf) for _, rf in VGG16_FIELDS]
    named = dict(zip([n for n, _ in VGG16_FIELDS], spatial, strict=True))
    assert named["conv5_3"].field.size == (196, 196) and named["pool5"].field.size == (212, 212)
    assert named["pool5"].field.jump == (32, 32) and named["pool5"].out_shape == (512, 7, 7)
    assert plan.params == 138_357_544
    assert plan.output_shape == (1000,)
    # 15.5 GMACs a 224x224 image, as published; FLOPs here count 2 per multiply-add.
    convs_and_dense = sum(lp.flops for lp in plan.layers if lp.type in ("conv2d", "dense"))
    assert convs_and_dense / 2 == pytest.approx(15.47e9, rel=0.01)


def test_lenet5_has_its_published_parameter_count() -> None:
    lenet5 = [
        L.Conv2d(channels=6, kernel_size=5), L.Tanh(), L.AvgPool2d(pool_size=2),
        L.Conv2d(channels=16, kernel_size=5), L.Tanh(), L.AvgPool2d(pool_size=2),
        L.Flatten(), L.Dense(units=120), L.Tanh(), L.Dense(units=84), L.Tanh(), L.Dense(units=10),
    ]  # fmt: skip
    plan = plan_network(dump(lenet5), [1, 32, 32])
    assert plan.params == 61_706
    shapes = [lp.out_shape for lp in plan.layers if lp.type in ("conv2d", "avgpool2d")]
    assert shapes == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5)]
    fields = [lp.field.size[0] for lp in plan.layers if lp.type in ("conv2d", "avgpool2d")]
    assert fields == [5, 6, 14, 16]  # 1+4, +1, +4*2, +1*4


def digits_lenet() -> list:
    return [
        L.Conv2d(channels=6, kernel_size=3, padding=1), L.ReLU(), L.MaxPool2d(pool_size=2),
        L.Conv2d(channels=16, kernel_size=3, padding=1), L.ReLU(), L.MaxPool2d(pool_size=2),
        L.Flatten(), L.Dense(units=120), L.ReLU(), L.Dense(units=84), L.ReLU(), L.Dense(units=10),
    ]  # fmt: skip


def test_a_lenet_for_8x8_digits_by_hand() -> None:
    s = summary(plan_network(dump(digits_lenet()), [1, 8, 8]))
    rows = {r["index"]: r for r in s["layers"]}
    # conv 1->6, 3x3, pad 1: 6*1*9 + 6 = 60 params; 6*8*8 outputs * 9 MACs * 2 = 6912 FLOPs.
    assert (rows[0]["output_shape"], rows[0]["params"], rows[0]["flops"]) == ([6, 8, 8], 60, 6912)
    # A dense layer from 1x8x8 to 6x8x8 would need 64*384 weights + 384 biases.
    assert rows[0]["dense_equivalent_params"] == 64 * 384 + 384
    assert rows[0]["receptive_field"] == {"size": [3, 3], "jump": [1, 1], "start": [0.0, 0.0]}
    # relu: one per element; pool 2x2: 4 comparisons per output.
    assert rows[1]["flops"] == 384 and (rows[2]["output_shape"], rows[2]["flops"]) == ([6, 4, 4], 96 * 4)
    # The pool moves the start half a pixel: ((2 - 1) / 2 - 0) * 1 = 0.5.
    assert rows[2]["receptive_field"] == {"size": [4, 4], "jump": [2, 2], "start": [0.5, 0.5]}
    # conv 6->16, 3x3, pad 1 on 4x4: 16*6*9 + 16 = 880; field 4 + 2*2 = 8, start 0.5 + (1 - 1)*2.
    assert (rows[3]["params"], rows[3]["flops"]) == (880, 16 * 4 * 4 * 54 * 2)
    assert rows[3]["receptive_field"] == {"size": [8, 8], "jump": [2, 2], "start": [0.5, 0.5]}
    assert rows[5]["receptive_field"] == {"size": [10, 10], "jump": [4, 4], "start": [1.5, 1.5]}
    # flatten: 16*2*2 = 64; the dense layers see the whole 8x8 input.
    assert rows[6]["output_shape"] == [64]
    assert rows[7]["receptive_field"] == {"size": [8, 8], "jump": None, "start": None}
    assert [rows[i]["params"] for i in (7, 9, 11)] == [64 * 120 + 120, 120 * 84 + 84, 84 * 10 + 10]
    assert s["params"] == 60 + 880 + 7800 + 10164 + 850 == 19_754
    assert s["dense_equivalent_params"] == 64 * 10 + 10 and s["output_shape"] == [10]


def test_dilation_stride_and_asymmetric_padding_in_the_field() -> None:
    net = [
        L.Conv2d(channels=2, kernel_size=3, dilation=2, padding=[1, 3, 0, 2]),  # spans 5
        L.Conv2d(channels=2, kernel_size=[1, 2], stride=2),
        L.MaxPool2d(pool_size=3, stride=1, padding=1),
    ]
    plan = plan_network(dump(net), [1, 10, 9])
    first, second, third = plan.layers
    # size 1 + (5-1)*1; start 0 + (2 - 1)*1 (top pad 1) and 0 + (2 - 0)*1 (left pad 0)
    assert (first.field.size, first.field.start, first.out_shape) == ((5, 5), (1.0, 2.0), (2, 10, 7))
    # kernel (1, 2) stride 2: h unchanged but jump 2; w: 5 + 1*1 = 6, start 2 + 0.5
    assert (second.field.size, second.field.jump, second.field.start) == ((5, 6), (2, 2), (1.0, 2.5))
    assert second.out_shape == (2, 5, 3)
    # pool 3, stride 1, pad 1: + 2*2 each way, start - (1 - 1)*2
    assert (third.field.size, third.field.jump, third.out_shape) == ((9, 10), (2, 2), (2, 5, 3))


def test_one_dimensional_layers() -> None:
    net = [
        L.Conv1d(channels=4, kernel_size=5, padding="same"), L.ReLU(), L.MaxPool1d(pool_size=2),
        L.Conv1d(channels=2, kernel_size=3, stride=2, groups=2), L.Flatten(), L.Dense(units=3),
    ]  # fmt: skip
    plan = plan_network(dump(net), [2, 32])
    assert [lp.out_shape for lp in plan.layers] == [(4, 32), (4, 32), (4, 16), (2, 7), (14,), (3,)]
    assert plan.layers[0].params == 4 * 2 * 5 + 4 and plan.layers[3].params == 2 * 2 * 3 + 2
    assert plan.layers[3].field.size == (5 + 1 + 2 * 2,) and plan.layers[3].field.jump == (4,)


@pytest.mark.parametrize(
    ("network", "shape", "field", "words"),
    [
        # a 5x5 kernel on the 2x2 maps left after two pools: names the layer and both shapes
        ([L.MaxPool2d(), L.MaxPool2d(), L.Conv2d(channels=1, kernel_size=5)], [1, 8, 8],
         "network.2.kernel_size", ["layer 2 (conv2d)", "[1, 2, 2]", "5x5"]),
        ([L.Flatten(), L.Conv2d(channels=1, kernel_size=1)], [1, 4, 4], "network.1",
         ["layer 1 (conv2d)", "[16]", "[C, H, W]"]),
        ([L.Conv1d(channels=1, kernel_size=1)], [1, 4, 4], "network.0", ["[C, L]"]),
        ([L.Conv2d(channels=3, kernel_size=1, groups=2)], [4, 4, 4], "network.0.groups", ["groups=2"]),
        ([L.MaxPool2d(pool_size=4)], [1, 3, 3], "network.0.pool_size", ["[4, 4]", "[3, 3]"]),
        ([L.MaxPool2d(pool_size=2, padding=2)], [1, 8, 8], "network.0.padding", ["half the pool"]),
        ([L.Conv2d(channels=1, kernel_size=3, padding=3, padding_mode="reflect")], [1, 3, 3],
         "network.0.padding", ["reflect"]),
    ],
)  # fmt: skip
def test_a_layer_that_does_not_fit_names_itself_and_both_shapes(
    network: list, shape: list, field: str, words: list
) -> None:
    with pytest.raises(InvalidArgument) as e:
        plan_network(dump(network), shape)
    assert e.value.field == field, e.value
    for word in words:
        assert word in str(e.value), (word, str(e.value))
