"""Device selection from ``MXCONV_DEVICE``: cpu, gpu, gpu:N or auto. Never a silent fall-back."""

from __future__ import annotations

from .mx import mxnet as mx


class DeviceUnavailable(RuntimeError):
    """The configured device does not exist on this machine."""


def gpu_count() -> int:
    try:
        return int(mx.context.num_gpus())
    except mx.base.MXNetError:  # a CPU-only build may raise instead of answering 0
        return 0


def resolve(spec: str) -> mx.Context:
    """The MXNet context for a device spec, or DeviceUnavailable with what to change."""
    spec = spec.strip().lower()
    if spec == "cpu":
        return mx.cpu()
    if spec == "auto":
        return mx.gpu(0) if gpu_count() > 0 else mx.cpu()
    if spec == "gpu" or spec.startswith("gpu:"):
        index_text = spec.partition(":")[2] or "0"
        if not index_text.isdigit():
            raise DeviceUnavailable(f"MXCONV_DEVICE={spec!r}: the GPU index must be a number")
        index = int(index_text)
        count = gpu_count()
        if index >= count:
            found = f"{count} GPU(s)" if count else "no GPU (is this a CUDA build of mxnet?)"
            raise DeviceUnavailable(
                f"MXCONV_DEVICE={spec!r} asks for GPU {index}, but MXNet sees {found}. "
                "Set MXCONV_DEVICE=cpu, or install an mxnet-cuXXX wheel on a machine with a GPU."
            )
        return mx.gpu(index)
    raise DeviceUnavailable(f"MXCONV_DEVICE={spec!r} is not one of cpu, gpu, gpu:N, auto")


def describe(ctx: mx.Context) -> str:
    return f"{ctx.device_type}:{ctx.device_id}" if ctx.device_type == "gpu" else "cpu"
