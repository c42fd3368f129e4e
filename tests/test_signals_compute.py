"""compute.conv.conv1d and compute.lti against independent oracles: scipy.signal, the seed's closed forms, and
plain numpy written here. Never against the implementation itself."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.signal
from mxconv_server.compute import conv, lti
from mxconv_server.compute.errors import InvalidArgument, OverBudget

# -- conv1d vs scipy.signal ------------------------------------------------------------------


def scipy_conv1d(x, w, b, *, stride, pads, dilation, groups, flip):
    """(N,C,L) x (O,C/groups,k) with scipy.signal.convolve / correlate, channel by channel."""
    n, c, _ = x.shape
    o, cg, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), pads))
    out_per_group = o // groups
    rows = []
    for i in range(n):
        chans = []
        for oc in range(o):
            g = oc // out_per_group
            acc = 0.0
            for ci in range(cg):
                k = np.zeros(dilation * (w.shape[2] - 1) + 1)
                k[::dilation] = w[oc, ci]
                op = scipy.signal.convolve if flip else scipy.signal.correlate
                acc = acc + op(xp[i, g * cg + ci], k, mode="valid")
            chans.append(acc[::stride] + (0 if b is None else b[oc]))
        rows.append(chans)
    return np.array(rows)


@pytest.mark.parametrize("seed", range(8))
def test_conv1d_random_cases_match_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 2, 3]))
    c = groups * int(rng.integers(1, 3))
    o = groups * int(rng.integers(1, 3))
    k = int(rng.integers(1, 6))
    dilation = int(rng.integers(1, 3))
    length = int(rng.integers(12, 40))
    n = int(rng.integers(1, 3))
    flip = bool(rng.integers(0, 2))
    stride = int(rng.integers(1, 4))
    pads = (int(rng.integers(0, 4)), int(rng.integers(0, 4)))
    x = rng.standard_normal((n, c, length))
    w = rng.standard_normal((o, c // groups, k))
    b = rng.standard_normal(o) if seed % 2 else None
    y = conv.conv1d(
        x,
        w,
        b,
        stride=stride,
        padding=list(pads),
        dilation=dilation,
        groups=groups,
        flip=flip,
        dtype="float64",
    )
    expected = scipy_conv1d(x, w, b, stride=stride, pads=pads, dilation=dilation, groups=groups, flip=flip)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, atol=1e-10)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("mode", ["valid", "same", "full"])
def test_conv1d_named_padding_is_scipy_convolve(k: int, mode: str) -> None:
    rng = np.random.default_rng(k)
    x, w = rng.standard_normal(17), rng.standard_normal(k)
    y = conv.conv1d(x, w, padding=mode, flip=True, dtype="float64")
    np.testing.assert_allclose(y, scipy.signal.convolve(x, w, mode=mode), atol=1e-12)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_conv1d_same_cross_correlation_puts_the_extra_sample_right(k: int) -> None:
    x, w = np.arange(1.0, 10.0), np.arange(1.0, k + 1.0)
    y = conv.conv1d(x, w, padding="same", dtype="float64")
    left, right = (k - 1) // 2, k // 2
    np.testing.assert_allclose(y, scipy.signal.correlate(np.pad(x, (left, right)), w, mode="valid"))


def test_conv1d_shapes_and_float32() -> None:
    x = np.random.default_rng(0).standard_normal((3, 20)).astype(np.float32)
    w = np.ones((4, 3, 5), dtype=np.float32)
    assert conv.conv1d(x, w).shape == (4, 16)
    assert conv.conv1d(x[0], np.ones(3)).shape == (18,)
    assert conv.conv1d(x[0], np.ones((2, 3))).shape == (2, 18)  # (O,k) over one channel
    y = conv.conv1d(x, np.ones((3, 5)), padding=[2, 2], padding_mode="circular")  # (C,k): one filter
    wrapped = np.concatenate([x[:, -2:], x, x[:, :2]], axis=1)
    np.testing.assert_allclose(y[0], scipy.signal.correlate(wrapped.sum(0), np.ones(5), "valid"), atol=1e-4)


@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs, field",
    [
        ((2, 3, 4, 5), (3,), {}, "x"),
        ((10,), (1, 1, 1, 3), {}, "weight"),
        ((10,), (12,), {}, "weight"),
        ((4, 10), (2, 3), {}, "weight"),
        ((4, 10), (2, 3, 3), {}, "weight"),
        ((3, 10), (3, 1, 3), {"groups": 2}, "groups"),
        ((10,), (3,), {"padding": [1, 2, 3]}, "padding"),
        ((10,), (3,), {"padding": "middle"}, "padding"),
        ((10,), (4,), {"padding": "same", "stride": 2}, "padding"),
        ((10,), (3,), {"padding": 10, "padding_mode": "reflect"}, "padding"),
        ((10,), (3,), {"stride": 0}, "stride"),
        ((10,), (3,), {"dilation": [1, 2]}, "dilation"),
    ],
)
def test_conv1d_bad_arguments_name_the_field(x_shape, w_shape, kwargs, field) -> None:
    with pytest.raises(InvalidArgument) as info:
        conv.plan_conv1d(x_shape, w_shape, **kwargs)
    assert info.value.field == field


# -- LTI: the seed's closed forms, written out here ------------------------------------------


def seed_step(t, tau):
    return 1 - np.exp(-t / tau)


def seed_window(t, tau):
    """The seed's 1-second window: 1 - e^{-t/T} on [0,1], (e^{1/T} - 1) e^{-t/T} after."""
    return np.where(t <= 1, 1 - np.exp(-t / tau), (np.exp(1 / tau) - 1) * np.exp(-t / tau))


FIRST = {"kind": "first_order", "T": 1.0}


@pytest.mark.parametrize("tau", [0.3, 1.0, 2.5])
def test_seed_step_response(tau: float) -> None:
    r = lti.lti_response({"kind": "step"}, {"kind": "first_order", "T": tau}, dt=0.01, duration=6)
    exact = seed_step(r.t, tau)
    np.testing.assert_allclose(r.y, exact, atol=2e-4)
    np.testing.assert_allclose(r.h, np.exp(-r.t / tau) / tau, rtol=1e-12)
    assert r.y_analytic is not None and r.max_abs_error is not None
    np.testing.assert_allclose(r.y_analytic, exact, atol=1e-14)
    assert r.max_abs_error == pytest.approx(np.max(np.abs(r.y - exact)), abs=1e-15)
    assert r.rule == "trapezoid" and r.order == 2


@pytest.mark.parametrize("tau", [0.3, 1.0, 2.5])
def test_seed_window_response(tau: float) -> None:
    r = lti.lti_response(
        {"kind": "window", "start": 0, "width": 1}, {"kind": "first_order", "T": tau}, dt=0.01, duration=6
    )
    exact = seed_window(r.t, tau)
    np.testing.assert_allclose(r.y, exact, atol=2e-4)
    np.testing.assert_allclose(r.y_analytic, exact, atol=1e-12)
    after = r.t > 1
    np.testing.assert_allclose(r.y[after], (np.exp(1 / tau) - 1) * np.exp(-r.t[after] / tau), atol=2e-4)


def _error(inp, system, dt, exact):
    r = lti.lti_response(inp, system, dt=dt, duration=4)
    return float(np.max(np.abs(r.y - exact(r.t))))


@pytest.mark.parametrize(
    "inp, exact",
    [
        ({"kind": "step"}, lambda t: seed_step(t, 1.0)),
        ({"kind": "window", "start": 0, "width": 1}, lambda t: seed_window(t, 1.0)),
        ({"kind": "window", "start": 0.5, "width": 1.25, "amplitude": 2}, None),
        ({"kind": "ramp", "slope": 1}, lambda t: t - 1 + np.exp(-t)),
    ],
)
def test_error_falls_at_second_order(inp, exact) -> None:
    if exact is None:  # a delayed, scaled window: 2 (y1(t - 0.5) - y1(t - 1.75)), y1 the step response

        def exact(t):
            return 2 * (seed_step(np.clip(t - 0.5, 0, None), 1) - seed_step(np.clip(t - 1.75, 0, None), 1))

    coarse, fine = _error(inp, FIRST, 0.02, exact), _error(inp, FIRST, 0.01, exact)
    ratio = coarse / fine
    assert 3.6 < ratio < 4.4, (coarse, fine)  # trapezoid: halving dt quarters the error
    assert fine < 1e-4


def test_impulse_is_a_discrete_delta_of_area_one() -> None:
    r = lti.lti_response({"kind": "impulse"}, FIRST, dt=0.05, duration=3)
    np.testing.assert_allclose(r.y, np.exp(-r.t), atol=1e-14)  # y = h exactly, not h/2
    assert r.x[0] * r.dt == pytest.approx(1.0) and not r.x[1:].any()
    r = lti.lti_response({"kind": "impulse", "area": 3}, FIRST, dt=0.05, duration=3)
    np.testing.assert_allclose(r.y, 3 * np.exp(-r.t), atol=1e-13)


def test_window_edges_off_the_grid_stay_second_order() -> None:
    def exact(t):  # the window [0.333, 1.333] as two delayed step responses, written out here
        return seed_step(np.clip(t - 0.333, 0, None), 1) - seed_step(np.clip(t - 1.333, 0, None), 1)

    inp = {"kind": "window", "start": 0.333, "width": 1}
    errors = [_error(inp, FIRST, dt, exact) for dt in (0.04, 0.02, 0.01)]
    assert 3.6 < errors[0] / errors[1] < 4.4 and 3.6 < errors[1] / errors[2] < 4.4, errors
    r = lti.lti_response(inp, FIRST, dt=0.01, duration=3)
    assert r.max_abs_error is not None and r.max_abs_error < 1e-5 and not r.notes


# -- LTI vs scipy.signal ---------------------------------------------------------------------


def random_tf(rng):
    """A stable, strictly proper transfer function with real and complex poles."""
    poles = list(-rng.uniform(0.3, 4, size=int(rng.integers(1, 3))))
    for _ in range(int(rng.integers(0, 2))):
        re, im = -rng.uniform(0.2, 2), rng.uniform(0.5, 5)
        poles += [complex(re, im), complex(re, -im)]
    den = np.real(np.poly(poles))
    num = rng.standard_normal(int(rng.integers(1, len(poles) + 1)))
    return num, den


@pytest.mark.parametrize("seed", range(6))
def test_transfer_function_matches_scipy_lsim(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    num, den = random_tf(rng)
    kinds = [
        {"kind": "step", "amplitude": 1.5},
        {"kind": "ramp", "slope": 0.5},
        {"kind": "sine", "freq": 0.7},
    ]
    inp = kinds[seed % 3]
    system = {"kind": "transfer_function", "num": num.tolist(), "den": den.tolist()}
    r = lti.lti_response(inp, system, dt=0.005, duration=6)
    reference = scipy.signal.lti(num, den)
    _, h_ref = scipy.signal.impulse(reference, T=r.t)
    np.testing.assert_allclose(r.h, h_ref, atol=1e-9 * max(1, np.abs(h_ref).max()))
    if inp["kind"] == "step":
        u = np.full_like(r.t, 1.5)
    elif inp["kind"] == "ramp":
        u = 0.5 * r.t
    else:
        u = np.sin(2 * np.pi * 0.7 * r.t)
    _, y_ref, _ = scipy.signal.lsim(reference, u, r.t)
    np.testing.assert_allclose(r.y, y_ref, atol=1e-4 * max(1, np.abs(y_ref).max()))


@pytest.mark.parametrize("zeta", [0.0, 0.2, 1.0, 1.7])
def test_second_order_step_matches_scipy(zeta: float) -> None:
    wn, gain = 3.0, 2.0
    system = {"kind": "second_order", "wn": wn, "zeta": zeta, "gain": gain}
    r = lti.lti_response({"kind": "step"}, system, dt=0.005, duration=5)
    _, y_ref = scipy.signal.step(([gain * wn * wn], [1, 2 * zeta * wn, wn * wn]), T=r.t)
    np.testing.assert_allclose(r.y, y_ref, atol=2e-4)
    assert r.y_analytic is not None
    np.testing.assert_allclose(r.y_analytic, y_ref, atol=1e-9)
    assert r.max_abs_error is not None and r.max_abs_error < 2e-4


def test_custom_input_and_h_match_a_numpy_trapezoid() -> None:
    rng = np.random.default_rng(7)
    dt = 0.1
    x, h = rng.standard_normal(40), rng.standard_normal(25)
    r = lti.lti_response(
        {"kind": "custom", "samples": x}, {"kind": "custom", "h": h, "t0": 0.2}, dt=dt, duration=4.9
    )
    n_t = len(r.t)
    hd = np.concatenate([[0, 0], h, np.zeros(n_t)])[:n_t]  # h delayed by t0 = 2 dt
    xs = np.concatenate([x, np.zeros(n_t - len(x))])
    expected = np.zeros(n_t)
    for n in range(1, n_t):  # the trapezoid over [0, t_n], term by term
        terms = xs[: n + 1] * hd[n::-1]
        expected[n] = dt * (terms.sum() - 0.5 * terms[0] - 0.5 * terms[-1])
    np.testing.assert_allclose(r.y, expected, atol=1e-12)
    assert r.y_analytic is None and r.max_abs_error is None


def test_expm_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    for scale in (0.01, 1, 30):
        a = rng.standard_normal((5, 5)) * scale
        ref = scipy.linalg.expm(a)
        np.testing.assert_allclose(lti.expm(a), ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())


@pytest.mark.parametrize(
    "inp, system, dt, duration, field",
    [
        ({"kind": "step"}, FIRST, 0.0, 1.0, "dt"),
        ({"kind": "step"}, FIRST, -0.1, 1.0, "dt"),
        ({"kind": "step"}, FIRST, 2.0, 1.0, "dt"),
        ({"kind": "step"}, {"kind": "first_order", "T": 0}, 0.1, 1.0, "system.T"),
        ({"kind": "step"}, {"kind": "second_order", "wn": 1, "zeta": -0.1}, 0.1, 1.0, "system.zeta"),
        (
            {"kind": "step"},
            {"kind": "transfer_function", "num": [1, 2], "den": [1, 3]},
            0.1,
            1.0,
            "system.num",
        ),
        ({"kind": "step"}, {"kind": "custom", "h": [1.0], "t0": -0.1}, 0.1, 1.0, "system.t0"),
        ({"kind": "step"}, {"kind": "custom", "h": [np.nan]}, 0.1, 1.0, "system.h"),
        ({"kind": "window", "start": -1, "width": 1}, FIRST, 0.1, 1.0, "input.start"),
        ({"kind": "sine", "freq": 5}, FIRST, 0.1, 1.0, "input.freq"),
        ({"kind": "custom", "samples": np.ones(12)}, FIRST, 0.1, 1.0, "input.samples"),
    ],
)
def test_lti_bad_arguments_name_the_field(inp, system, dt, duration, field) -> None:
    with pytest.raises(InvalidArgument) as info:
        lti.lti_response(inp, system, dt=dt, duration=duration)
    assert info.value.field == field


def test_lti_grid_over_budget() -> None:
    with pytest.raises(OverBudget, match="dt"):
        lti.lti_response({"kind": "step"}, FIRST, dt=1e-4, duration=10, max_samples=20_000)
