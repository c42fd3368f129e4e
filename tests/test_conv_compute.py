"""compute.conv against independent oracles: numpy loops, scipy.signal and the seed's numbers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from mxconv_server.compute import conv
from mxconv_server.compute.errors import InvalidArgument, OverBudget

from . import oracle

SEED_X = np.arange(9.0).reshape(3, 3)
SEED_K = np.array([[0.0, 1.0], [2.0, 3.0]])


def seed_stripe_image() -> np.ndarray:
    x = np.ones((6, 6))
    x[:, 2:4] = 0
    return x


def assert_close(actual: np.ndarray, expected: np.ndarray, tol: float = 1e-4) -> None:
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    err = float(np.abs(actual - expected).max()) / scale
    assert err <= tol, f"max abs error {err:.3g} relative to magnitude {scale:.3g}"


def test_seed_corr2d() -> None:
    np.testing.assert_array_equal(conv.corr2d(SEED_X, SEED_K), [[19, 25], [37, 43]])


def test_seed_edge_map() -> None:
    y = conv.conv2d(seed_stripe_image(), np.array([[1.0, -1.0]]))
    expected = np.tile([0.0, 1.0, 0.0, -1.0, 0.0], (6, 1))
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(y, oracle.corr2d(seed_stripe_image(), np.array([[1.0, -1.0]])))


def _random_case(rng: np.random.Generator) -> dict:
    groups = int(rng.choice([1, 2, 3]))
    cg = int(rng.integers(1, 3))
    og = int(rng.integers(1, 3))
    kh, kw = (int(v) for v in rng.integers(1, 5, size=2))  # even and odd kernels
    dilation = tuple(int(v) for v in rng.integers(1, 3, size=2))
    stride = tuple(int(v) for v in rng.integers(1, 4, size=2))
    h = int(rng.integers(dilation[0] * (kh - 1) + 1, 12))
    w = int(rng.integers(dilation[1] * (kw - 1) + 1, 12))
    return {
        "x": rng.standard_normal((int(rng.integers(1, 3)), cg * groups, h, w)),
        "w": rng.standard_normal((og * groups, cg, kh, kw)),
        "b": rng.standard_normal(og * groups) if rng.random() < 0.5 else None,
        "stride": stride,
        "dilation": dilation,
        "groups": groups,
    }


@pytest.mark.parametrize("seed", range(25))
def test_random_shapes_match_loop_oracle(seed: int) -> None:
    rng = np.random.default_rng(seed)
    case = _random_case(rng)
    pads = tuple(int(v) for v in rng.integers(0, 3, size=4))
    y = conv.conv2d(
        case["x"],
        case["w"],
        case["b"],
        stride=case["stride"],
        padding=list(pads),
        dilation=case["dilation"],
        groups=case["groups"],
    )
    expected = oracle.conv2d(
        case["x"],
        case["w"],
        case["b"],
        stride=case["stride"],
        pads=pads,
        dilation=case["dilation"],
        groups=case["groups"],
    )
    assert_close(y, expected)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular", "symmetric"])
@pytest.mark.parametrize(
    "padding, pads",
    [(1, (1, 1, 1, 1)), ([2, 1], (2, 2, 1, 1)), ([0, 2, 1, 0], (0, 2, 1, 0)), ([1, 0, 0, 2], (1, 0, 0, 2))],
)
def test_every_padding_mode_and_form(mode: str, padding, pads) -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 4, 5, 6))
    w = rng.standard_normal((6, 2, 3, 2))
    y = conv.conv2d(x, w, padding=padding, padding_mode=mode, groups=2, stride=(1, 2))
    expected = oracle.conv2d(x, w, pads=pads, padding_mode=mode, groups=2, stride=(1, 2))
    assert_close(y, expected)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular", "symmetric"])
@pytest.mark.parametrize("pads", [(1, 1, 1, 1), (0, 2, 3, 0), (5, 5, 5, 5)])
def test_1x1_kernels_with_padding(mode: str, pads) -> None:
    """1x1 kernels take a GEMM path: it must see the padded input (a fuzzed 500 once)."""
    if mode == "reflect" and max(pads) >= 6:
        pytest.skip("reflect padding must be smaller than the input")
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 3, 6, 7))
    w = rng.standard_normal((4, 3, 1, 1))
    b = rng.standard_normal(4)
    y = conv.conv2d(x, w, b, padding=list(pads), padding_mode=mode)
    assert_close(y, oracle.conv2d(x, w, b, pads=pads, padding_mode=mode))


@pytest.mark.parametrize("kernel_shape", [(2, 2), (3, 3), (2, 3), (4, 1)])
def test_same_keeps_size_and_pads_bottom_right_for_even_kernels(kernel_shape) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 8))
    k = rng.standard_normal(kernel_shape)
    y = conv.conv2d(x, k, padding="same")
    assert y.shape == x.shape
    kh, kw = kernel_shape
    pads = ((kh - 1) // 2, kh // 2, (kw - 1) // 2, kw // 2)  # extra row/column bottom/right
    expected = oracle.conv2d(x[None, None], k[None, None], pads=pads)[0, 0]
    assert_close(y, expected)


@pytest.mark.parametrize("mode", ["valid", "same", "full"])
@pytest.mark.parametrize("kernel_shape", [(2, 2), (3, 3), (2, 5), (4, 3)])
def test_flip_matches_scipy(mode: str, kernel_shape) -> None:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((9, 10))
    k = rng.standard_normal(kernel_shape)
    assert_close(conv.conv2d(x, k, padding=mode, flip=True), scipy.signal.convolve2d(x, k, mode=mode))
    assert_close(conv.conv2d(x, k, padding=mode), scipy.signal.correlate2d(x, k, mode=mode))


def test_float64_is_computed_in_float64() -> None:
    rng = np.random.default_rng(5)
    x, k = rng.standard_normal((20, 20)), rng.standard_normal((3, 3))
    y = conv.conv2d(x, k, dtype="float64")
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, scipy.signal.correlate2d(x, k, mode="valid"), atol=1e-12)


def test_weight_shape_forms() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 6, 6))
    w3 = rng.standard_normal((3, 2, 2))  # one filter spanning all 3 channels (seed's multi-in)
    expected = sum(oracle.corr2d(x[c], w3[c]) for c in range(3))
    assert_close(conv.conv2d(x, w3), expected[None])
    single = rng.standard_normal((6, 6))
    bank = rng.standard_normal((4, 3, 3))  # 4 filters over a single channel
    assert conv.conv2d(single, bank).shape == (4, 4, 4)
    with pytest.raises(InvalidArgument, match="ambiguous"):
        conv.conv2d(rng.standard_normal((4, 6, 6)), rng.standard_normal((2, 3, 3)), groups=2)


def test_channel_mix_is_a_1x1_conv_and_a_matrix_product() -> None:
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 4, 5))
    w = rng.standard_normal((2, 3))
    b = rng.standard_normal(2)
    mix = conv.channel_mix(x, w, b, matrix_view=True)
    assert_close(mix.y, conv.conv2d(x, w[:, :, None, None], b))
    # Y' = W X' with X' the channels-by-pixels matrix, per the seed
    expected = np.stack([w @ x[i].reshape(3, -1) + b[:, None] for i in range(2)])
    assert_close(mix.y.reshape(2, 2, -1), expected)
    x_flat = np.concatenate([x[i].reshape(3, -1) for i in range(2)], axis=1)
    assert_close(mix.x_flat, x_flat)
    assert_close(mix.y_flat, w @ x_flat + b[:, None])


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"x": np.ones((3, 3)), "weight": np.ones((5, 5))}, "weight"),
        ({"x": np.ones((3, 6, 6)), "weight": np.ones((4, 2, 2, 2)), "groups": 2}, "groups"),
        ({"x": np.ones((4, 6, 6)), "weight": np.ones((3, 3, 2, 2)), "groups": 1}, "weight"),
        ({"x": np.ones((4, 6, 6)), "weight": np.ones((3, 2, 2, 2)), "groups": 2}, "weight"),
        ({"x": np.ones((6, 6)), "weight": np.ones((2, 2)), "bias": np.ones(3)}, "bias"),
        (
            {"x": np.ones((4, 4)), "weight": np.ones((2, 2)), "padding": 4, "padding_mode": "reflect"},
            "padding",
        ),
        (
            {"x": np.ones((4, 4)), "weight": np.ones((2, 2)), "padding": [3, 4], "padding_mode": "reflect"},
            "padding",
        ),
        ({"x": np.ones((4, 4)), "weight": np.ones((2, 2)), "padding": "same", "stride": 2}, "padding"),
        ({"x": np.ones((4, 4)), "weight": np.ones((2, 2)), "stride": 0}, "stride"),
        ({"x": np.ones((4, 4)), "weight": np.ones((2, 2)), "dilation": [1, 0]}, "dilation"),
        ({"x": np.ones((4, 4)), "weight": np.ones((2, 2)), "padding_mode": "mirror"}, "padding_mode"),
        ({"x": np.ones(4), "weight": np.ones((2, 2))}, "x"),
    ],
)
def test_bad_geometry_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        conv.conv2d(**kwargs)
    assert info.value.field == field


def test_budget_is_checked_from_the_plan_alone() -> None:
    plan = conv.plan_conv2d((8, 64, 56, 56), (64, 64, 3, 3), padding=1)
    assert plan.flops == 2 * 8 * 64 * 56 * 56 * 64 * 9
    with pytest.raises(OverBudget, match="FLOPs"):
        conv.check_budget(plan, max_elements=10**9, max_flops=10**9)
    with pytest.raises(OverBudget, match="elements"):
        conv.check_budget(plan, max_elements=1000, max_flops=10**12)


def test_circular_padding_wider_than_the_input_wraps_again_as_scipy_does() -> None:
    """scipy's own test_same_with_boundary: a 21-wide kernel over a 4-wide image, 'wrap'."""
    image, kernel = np.array([[2.0, -1.0, 3.0, 4.0]]), np.ones((1, 21))
    for flip in (False, True):
        y = conv.conv2d(image, kernel, padding="same", padding_mode="circular", flip=flip, dtype="float64")
        np.testing.assert_allclose(y, [[43.0, 44.0, 42.0, 39.0]])
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((3, 4)), rng.standard_normal((5, 9))  # pads 4 and 8 on a 3x4 input
    y = conv.conv2d(x, w, padding="full", padding_mode="circular", dtype="float64")
    wrapped = np.pad(x, ((4, 4), (8, 8)), mode="wrap")
    np.testing.assert_allclose(y, scipy.signal.correlate2d(wrapped, w, mode="valid"), rtol=1e-12, atol=1e-12)
