"""Section 6: the Open Inference Protocol (/v2) end to end through tritonclient's binary tensors
(its InferenceServerClient, and its aio client), against mxconv.Client's binary transport (/v1)
and the same convolution in-process, all interleaved in one run on the two largest cases, so
the ratios compare times taken under the same load. Target: /v2 within 1.1x of /v1.

A last row sends both protocols' binary requests through one plain ``http.client`` loop (bodies
built beforehand, answers received into one buffer), so that what differs is the server's path
alone, not the clients': tritonclient's InferenceServerClient reads an answer in 4 KiB receives
(geventhttpclient's block size), which on a 12.8 MB output costs it more than the server's work.
"""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import mxconv
import numpy as np

from .common import CASES, LARGEST, Case, Report, interleaved_ms, mxconv_server, reps_for

TARGET = 1.1
SECTION = "6 inference protocol"


def _inputs(x: np.ndarray, w: np.ndarray) -> list[Any]:
    import tritonclient.http as httpclient

    inputs = [
        httpclient.InferInput("x", list(x.shape), "FP32"),
        httpclient.InferInput("weight", list(w.shape), "FP32"),
    ]
    inputs[0].set_data_from_numpy(x, binary_data=True)
    inputs[1].set_data_from_numpy(w, binary_data=True)
    return inputs


def triton_call(client: Any, case: Case, x: np.ndarray, w: np.ndarray) -> Callable[[], np.ndarray]:
    """One conv2d as a Triton user writes it: binary inputs, and (no outputs named) every output
    as binary data. The inputs are made in the call, as mxconv.Client encodes its own."""
    return lambda: client.infer("conv2d", _inputs(x, w), parameters={"padding": case.padding}).as_numpy("y")


def aio_call(client: Any, loop: asyncio.AbstractEventLoop, case: Case, x: np.ndarray, w: np.ndarray) -> Any:
    async def call() -> np.ndarray:
        result = await client.infer("conv2d", _inputs(x, w), parameters={"padding": case.padding})
        await asyncio.sleep(0)  # let the loop close the connection gunicorn closed (Connection: close)
        return result.as_numpy("y")

    return lambda: loop.run_until_complete(call())


def _plain(netloc: str, path: str, body: bytes, headers: dict[str, str]) -> Callable[[], bytearray]:
    host, _, port = netloc.partition(":")

    def post() -> bytearray:
        conn = http.client.HTTPConnection(host, int(port))
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        out = bytearray(int(resp.getheader("Content-Length") or 0))
        view, got = memoryview(out), 0
        while got < len(out):
            got += resp.readinto(view[got:]) or 0
        conn.close()
        assert resp.status == 200, bytes(out[:300])
        return out

    return post


def plain_calls(netloc: str, case: Case, x: np.ndarray, w: np.ndarray) -> dict[str, Callable[[], bytearray]]:
    """The /v1 and /v2 binary requests, each built once, sent by the same plain client."""
    boundary = "mxconv-bench"
    v1_body = bytes(
        mxconv.tensors.multipart_body({"x": x, "weight": w}, {"padding": case.padding}, boundary=boundary)
    )
    tensors = [("x", x), ("weight", w)]
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": n,
                    "shape": list(a.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": a.nbytes},
                }
                for n, a in tensors
            ],
            "parameters": {"padding": case.padding, "binary_data_output": True},
        }
    ).encode()
    v2_body = header + b"".join(a.tobytes() for _, a in tensors)
    return {
        "plain v1": _plain(
            netloc,
            "/v1/conv2d",
            v1_body,
            {"Content-Type": f"multipart/form-data; boundary={boundary}", "Accept": "application/x-npy"},
        ),
        "plain v2": _plain(
            netloc,
            "/v2/models/conv2d/infer",
            v2_body,
            {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))},
        ),
    }


def run(report: Report, threads: int, env: dict[str, str], quick: bool = False) -> None:
    try:
        import tritonclient.http as httpclient
        import tritonclient.http.aio as aioclient
    except ImportError:
        report.notes.append("section 6: tritonclient is not installed (pip install 'tritonclient[http]')")
        return
    from .inprocess import competitors

    loop = asyncio.new_event_loop()
    with mxconv_server(env) as server:
        netloc = urlsplit(server.url).netloc
        triton = httpclient.InferenceServerClient(netloc, network_timeout=300)

        async def aio_client() -> Any:  # aiohttp wants a running loop
            return aioclient.InferenceServerClient(netloc, conn_timeout=300)

        aio = loop.run_until_complete(aio_client())
        v1 = mxconv.Client(server.url, transport="binary")
        for case in (c for c in CASES if c.name in LARGEST):
            x, w = case.arrays()
            fns: dict[str, Callable[[], Any]] = {
                "in-process": competitors(case, threads)["mxconv"],
                "v1": lambda x=x, w=w, case=case: v1.conv2d(x, w, padding=case.padding),
                "v2": triton_call(triton, case, x, w),
                "v2 aio": aio_call(aio, loop, case, x, w),
                **plain_calls(netloc, case, x, w),
            }
            expected = fns["in-process"]()
            y1 = fns["v1"]()
            for name in ("v2", "v2 aio"):
                assert np.array_equal(fns[name](), y1), f"/v2 ({name}) and /v1 disagree"
            assert np.allclose(y1, expected, rtol=1e-4, atol=1e-3), "/v1 disagrees with in-process"
            first = interleaved_ms(fns, reps=1, warmup=1)
            reps = reps_for(sum(first.values()), 900 if quick else 7000, lo=5, hi=25)
            ms = interleaved_ms(fns, reps=reps, warmup=0)
            _rows(report, case, ms)
        triton.close()
        loop.run_until_complete(aio.close())
    loop.close()


def _rows(report: Report, case: Case, ms: dict[str, float]) -> None:
    base = ms["in-process"]
    for what, key in (
        ("mxconv.Client binary (/v1)", "v1"),
        ("tritonclient binary (/v2)", "v2"),
        ("tritonclient.aio binary (/v2)", "v2 aio"),
    ):
        report.add(
            SECTION,
            case.label,
            what,
            f"{ms[key]:.3f} ms",
            f"in-process {base:.3f} ms",
            f"{ms[key] / base:.2f}",
        )
    for what, key, against in (
        ("tritonclient (/v2) vs mxconv.Client (/v1)", "v2", "v1"),
        ("tritonclient.aio (/v2) vs mxconv.Client (/v1)", "v2 aio", "v1"),
        ("one plain client: /v2 vs /v1 binary", "plain v2", "plain v1"),
    ):
        ratio = ms[key] / ms[against]
        verdict = report.target(
            f"{case.name} {what} <= {TARGET}x",
            ratio <= TARGET,
            f"{ratio:.2f}x ({ms[key]:.2f} vs {ms[against]:.2f} ms; in-process {base:.2f} ms)",
        )
        report.add(
            SECTION,
            case.label,
            what,
            f"{ms[key]:.3f} ms",
            f"{ms[against]:.3f} ms",
            f"{ratio:.2f}",
            f"<={TARGET} {verdict}",
        )
