"""Independent reference implementations: plain numpy loops, no MXNet.

These are the test oracles (d2l's ``corr2d`` loop), never the implementation.
"""

from __future__ import annotations

import numpy as np

NP_PAD_MODES = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
    "symmetric": "symmetric",
}


def corr2d(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The seed's loop: valid cross-correlation of 2-D arrays."""
    h, w = k.shape
    y = np.zeros((x.shape[0] - h + 1, x.shape[1] - w + 1))
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            y[i, j] = (x[i : i + h, j : j + w] * k).sum()
    return y


def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    *,
    stride: tuple[int, int] = (1, 1),
    pads: tuple[int, int, int, int] = (0, 0, 0, 0),
    padding_mode: str = "zeros",
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> np.ndarray:
    """x (N,C,H,W), w (O,C/groups,kh,kw) -> (N,O,Ho,Wo), by explicit loops over outputs."""
    top, bottom, left, right = pads
    xp = np.pad(
        x.astype(np.float64),
        ((0, 0), (0, 0), (top, bottom), (left, right)),
        mode=NP_PAD_MODES[padding_mode],
    )
    n, c, hp, wp = xp.shape
    o, cg, kh, kw = w.shape
    sh, sw = stride
    dh, dw = dilation
    ho = (hp - (dh * (kh - 1) + 1)) // sh + 1
    wo = (wp - (dw * (kw - 1) + 1)) // sw + 1
    out_per_group = o // groups
    y = np.zeros((n, o, ho, wo))
    for oc in range(o):
        g = oc // out_per_group
        channels = slice(g * cg, (g + 1) * cg)
        for i in range(ho):
            for j in range(wo):
                patch = xp[
                    :,
                    channels,
                    i * sh : i * sh + dh * (kh - 1) + 1 : dh,
                    j * sw : j * sw + dw * (kw - 1) + 1 : dw,
                ]
                y[:, oc, i, j] = (patch * w[oc]).sum(axis=(1, 2, 3))
        if b is not None:
            y[:, oc] += b[oc]
    return y
