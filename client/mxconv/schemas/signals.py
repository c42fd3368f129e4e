"""1-D convolution and LTI system responses."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from .common import ComputeOptions, Encoding, Finite, OutTensor, Strict, Tensor
from .geometry import ConvGeometry1d


class Conv1dRequest(ConvGeometry1d, ComputeOptions):
    x: Tensor = Field(description="Input: (L,), (C,L) or (N,C,L).")
    weight: Tensor = Field(
        description="Kernel: (k,), (O,C/groups,k), or (O,k) / (C,k) where that is unambiguous."
    )
    bias: Tensor | None = Field(None, description="Per-output-channel bias, shape (O,).")


class StepInput(Strict):
    """The unit step u(t), scaled: x(t) = amplitude for t >= 0."""

    kind: Literal["step"] = "step"
    amplitude: Finite = 1.0


class ImpulseInput(Strict):
    """A Dirac impulse at t = 0 of the given area."""

    kind: Literal["impulse"] = "impulse"
    area: Finite = 1.0


class WindowInput(Strict):
    """The rectangular window: x(t) = amplitude on [start, start + width], 0 elsewhere."""

    kind: Literal["window"] = "window"
    start: Finite = Field(0.0, ge=0, description="Seconds; >= 0. Need not be on the grid.")
    width: Finite = Field(1.0, gt=0, description="Seconds; > 0.")
    amplitude: Finite = 1.0


class RampInput(Strict):
    """x(t) = slope * t for t >= 0."""

    kind: Literal["ramp"] = "ramp"
    slope: Finite = 1.0


class SineInput(Strict):
    """x(t) = amplitude * sin(2 pi freq t) for t >= 0; freq below the grid's Nyquist 1/(2 dt)."""

    kind: Literal["sine"] = "sine"
    freq: Finite = Field(gt=0, description="Hz; > 0 and below 1/(2 dt).")
    amplitude: Finite = 1.0


class CustomInput(Strict):
    """Samples x(k dt), k = 0, 1, ...; zero after the last one."""

    kind: Literal["custom"] = "custom"
    samples: Tensor = Field(description="1-D, at most duration/dt + 1 samples.")


LtiInput = Annotated[
    StepInput | ImpulseInput | WindowInput | RampInput | SineInput | CustomInput,
    Field(discriminator="kind"),
]


class FirstOrder(Strict):
    """G(s) = gain / (T s + 1): h(t) = (gain / T) e^{-t/T}."""

    kind: Literal["first_order"] = "first_order"
    T: Finite = Field(gt=0, description="Time constant in seconds; > 0.")
    gain: Finite = 1.0


class SecondOrder(Strict):
    """G(s) = gain wn^2 / (s^2 + 2 zeta wn s + wn^2)."""

    kind: Literal["second_order"] = "second_order"
    wn: Finite = Field(gt=0, description="Natural frequency in rad/s; > 0.")
    zeta: Finite = Field(ge=0, description="Damping ratio; >= 0.")
    gain: Finite = 1.0


class CustomSystem(Strict):
    """An impulse response given as samples h(t0 + k dt)."""

    kind: Literal["custom"] = "custom"
    h: Tensor = Field(description="1-D samples of h on the request's grid spacing dt.")
    t0: Finite = Field(0.0, description="Time of h's first sample: >= 0 (causal), a multiple of dt.")


class TransferFunction(Strict):
    """G(s) = num(s) / den(s), strictly proper; coefficients from the highest power of s down."""

    kind: Literal["transfer_function"] = "transfer_function"
    num: list[Finite] = Field(min_length=1, max_length=32, description="e.g. [1] for 1.")
    den: list[Finite] = Field(min_length=1, max_length=32, description="e.g. [2, 1] for 2s + 1.")


LtiSystem = Annotated[
    FirstOrder | SecondOrder | CustomSystem | TransferFunction,
    Field(discriminator="kind"),
]


class LtiRequest(Strict):
    input: LtiInput
    system: LtiSystem
    dt: Finite = Field(gt=0, description="Grid step in seconds; > 0.")
    duration: Finite = Field(
        gt=0, description="Simulated time in seconds; the grid is 0, dt, ..., <= duration."
    )
    output_encoding: Encoding = Field("list", description="How the output arrays are encoded.")


class LtiPlotRequest(LtiRequest):
    width: int = Field(800, ge=64, le=4096, description="PNG width in pixels.")
    height: int = Field(500, ge=64, le=4096, description="PNG height in pixels.")


class LtiResult(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    t: OutTensor = Field(description="The grid: t_n = n dt.")
    x: OutTensor = Field(
        description="The input samples used (an impulse as a discrete delta area/dt at t=0)."
    )
    h: OutTensor = Field(description="The impulse response samples used, h(t_n).")
    y: OutTensor = Field(description="The response y(t_n).")
    y_analytic: OutTensor | None = Field(None, description="The closed-form response, where one exists.")
    max_abs_error: float | None = Field(None, description="max |y - y_analytic| on the grid.")
    analytic: str | None = Field(None, description="The closed form used, as a formula.")
    rule: str = Field(description='The discretization rule, e.g. "trapezoid".')
    order: int = Field(description="The rule's order: the error falls like dt**order.")
    discretization: str = Field(description="The rule, stated in full.")
    dt: float
    n_samples: int
    input: str = Field(description="The input, in words.")
    system: str = Field(description="The system, in words.")
    notes: list[str] = Field(default_factory=list)
    flops: int
    elapsed_ms: float
