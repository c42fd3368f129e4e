"""The compute commands: conv2d, conv1d, corr2d, channel-mix, filter, lti and kernels."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from .. import schemas
from . import array, client, emit, write_bytes


def _geometry(args: argparse.Namespace) -> dict[str, Any]:
    """The geometry options given (unset ones are left to the server's defaults)."""
    out: dict[str, Any] = {}
    for name in schemas.ConvGeometry.model_fields:
        value = getattr(args, name, None)
        if value is None or (name == "flip" and not value):
            continue
        out[name] = _number_or_json(value) if name == "padding" else value
    return out


def _number_or_json(text: str) -> Any:
    """``same`` or ``2`` or ``[1,2]``: padding as given on a command line."""
    if text in ("valid", "same", "full"):
        return text
    return json.loads(text)


def _pair(text: str) -> Any:
    value = json.loads(text)
    return value if isinstance(value, int) else list(value)


def _add_geometry(p: argparse.ArgumentParser, *, one_d: bool = False) -> None:
    kind = int if one_d else _pair
    p.add_argument("--stride", type=kind, help="an int" + ("" if one_d else ", or [h,w]"))
    p.add_argument("--padding", help="valid, same, full, an int, or a JSON list")
    p.add_argument("--padding-mode", dest="padding_mode", choices=_modes())
    p.add_argument("--dilation", type=kind)
    p.add_argument("--groups", type=int)
    p.add_argument("--flip", action="store_true", help="true convolution (default: cross-correlation)")


def _modes() -> list[str]:
    from typing import get_args

    return list(get_args(schemas.PaddingMode))


def _conv(args: argparse.Namespace, method: str) -> int:
    bias = None if args.bias is None else array(args.bias)
    run = getattr(client(args), method)
    result = run(array(args.x), array(args.weight), bias, dtype=args.dtype, detailed=True, **_geometry(args))
    emit(args, result.y, result)
    return 0


def _cmd_conv2d(args: argparse.Namespace) -> int:
    return _conv(args, "conv2d")


def _cmd_conv1d(args: argparse.Namespace) -> int:
    return _conv(args, "conv1d")


def _cmd_corr2d(args: argparse.Namespace) -> int:
    y = client(args).corr2d(array(args.x), array(args.kernel), dtype=args.dtype)
    if args.json or args.output:
        emit(args, y)
    else:
        print(json.dumps(np.asarray(y).tolist()))
    return 0


def _cmd_channel_mix(args: argparse.Namespace) -> int:
    bias = None if args.bias is None else array(args.bias)
    mix = client(args).channel_mix(
        array(args.x), array(args.weight), bias, matrix_view=args.matrix_view, dtype=args.dtype
    )
    emit(args, mix.y, mix)
    return 0


def _cmd_filter(args: argparse.Namespace) -> int:
    kernel: Any = args.preset if args.kernel is None else array(args.kernel)
    options = {k: getattr(args, k) for k in ("size", "sigma", "mapping")}
    wants_png = bool(args.output) and args.output.lower().endswith(".png")
    c = client(args)
    common: dict[str, Any] = {**options, "grayscale": args.grayscale, **_geometry(args)}
    if wants_png:
        write_bytes(args, c.filter_image(args.image, kernel, output="png", **common))
    else:
        result = c.filter_image(args.image, kernel, output="result", **common)
        emit(args, result.y, result)
    return 0


def _cmd_lti(args: argparse.Namespace) -> int:
    given = {k: v for k, v in vars(args).items() if v is not None}
    inputs = {"step": ("amplitude",), "impulse": ("area",), "window": ("start", "width", "amplitude"),
              "ramp": ("slope",), "sine": ("freq", "amplitude")}  # fmt: skip
    systems = {
        "first-order": ("T", "gain"),
        "second-order": ("wn", "zeta", "gain"),
        "transfer-function": ("num", "den"),
    }
    inp = {"kind": args.input, **{k: given[k] for k in inputs[args.input] if k in given}}
    system = {
        "kind": args.system.replace("-", "_"),
        **{k: given[k] for k in systems[args.system] if k in given},
    }
    c = client(args)
    if args.output and args.output.lower().endswith(".png"):
        write_bytes(args, c.lti_response_png(inp, system, dt=args.dt, duration=args.duration))
        return 0
    r = c.lti_response(inp, system, dt=args.dt, duration=args.duration)
    if args.output or args.json:
        emit(args, np.stack([r.t, r.y]), r)
        return 0
    print(f"{r.system}, input {r.input}: {r.n_samples} samples of dt = {r.dt:g} ({r.rule}, order {r.order})")
    print(
        f"y(end) = {r.y[-1]:.6g}"
        + ("" if r.max_abs_error is None else f", max |y - closed form| = {r.max_abs_error:.3g}")
    )
    return 0


def _cmd_kernels(args: argparse.Namespace) -> int:
    c = client(args)
    if args.name is None:
        presets = c.kernels()
        if args.json:
            print(presets.model_dump_json())
        for p in [] if args.json else presets.presets:
            print(f"{p.name:16s} {p.description}")
        return 0
    preset = c.kernel(args.name, size=args.size, sigma=args.sigma)
    print(preset.model_dump_json() if args.json else np.array2string(np.array(preset.matrix), precision=4))
    return 0


def add_commands(sub: Any) -> None:
    for name, fn, help_text, one_d in (
        ("conv2d", _cmd_conv2d, "2-D cross-correlation or convolution", False),
        ("conv1d", _cmd_conv1d, "1-D cross-correlation or convolution", True),
    ):
        p = sub.add_parser(name, help=help_text, description=f"{help_text}; x and weight: .npy files or JSON")
        p.add_argument("x")
        p.add_argument("weight")
        p.add_argument("--bias")
        _add_geometry(p, one_d=one_d)
        p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
        p.add_argument("-o", "--output", help="write y to this .npy file")
        p.set_defaults(func=fn)
    corr = sub.add_parser("corr2d", help="the seed's corr2d: valid 2-D cross-correlation")
    corr.add_argument("x", help="input: .npy, or JSON such as '[[0,1,2],[3,4,5],[6,7,8]]'")
    corr.add_argument("kernel", help="kernel: .npy, or JSON such as '[[0,1],[2,3]]'")
    corr.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    corr.add_argument("-o", "--output", help="write y to this .npy file")
    corr.set_defaults(func=_cmd_corr2d)
    mix = sub.add_parser("channel-mix", help="a 1x1 convolution: C channels mixed into O by a matrix")
    mix.add_argument("x")
    mix.add_argument("weight", help="the (O, C) mixing matrix")
    mix.add_argument("--bias")
    mix.add_argument("--matrix-view", action="store_true", help="also X', W and Y' = W X' (with --json)")
    mix.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    mix.add_argument("-o", "--output", help="write y to this .npy file")
    mix.set_defaults(func=_cmd_channel_mix)
    flt = sub.add_parser("filter", help="filter an image with a preset or a kernel")
    flt.add_argument("image", help="a PNG or JPEG file")
    flt.add_argument("--preset", default="identity", help="a preset name (mxconv kernels lists them)")
    flt.add_argument("--kernel", help="a custom kernel instead: .npy or JSON such as '[[1,-1]]'")
    flt.add_argument("--size", type=int)
    flt.add_argument("--sigma", type=float)
    flt.add_argument("--mapping", choices=["clip", "minmax", "abs"])
    flt.add_argument("--grayscale", action="store_true")
    _add_geometry(flt)
    flt.add_argument("-o", "--output", help="out.png (the server's 0-255 image) or out.npy (the values)")
    flt.set_defaults(func=_cmd_filter)
    lti = sub.add_parser("lti", help="an LTI system's response, by convolution")
    lti.add_argument("--input", required=True, choices=["step", "impulse", "window", "ramp", "sine"])
    lti.add_argument("--system", required=True, choices=["first-order", "second-order", "transfer-function"])
    for opt in ("amplitude", "area", "start", "width", "slope", "freq", "T", "gain", "wn", "zeta"):
        lti.add_argument(f"--{opt}", type=float)
    lti.add_argument("--num", type=json.loads, help="transfer function numerator, e.g. '[1, 2]'")
    lti.add_argument("--den", type=json.loads, help="denominator, e.g. '[1, 2, 5]'")
    lti.add_argument("--dt", type=float, default=0.01)
    lti.add_argument("--duration", type=float, default=5.0)
    lti.add_argument("-o", "--output", help="plot.png, or y.npy (rows t and y)")
    lti.set_defaults(func=_cmd_lti)
    ker = sub.add_parser("kernels", help="the filter presets, or one preset's matrix")
    ker.add_argument("name", nargs="?")
    ker.add_argument("--size", type=int)
    ker.add_argument("--sigma", type=float)
    ker.set_defaults(func=_cmd_kernels)
