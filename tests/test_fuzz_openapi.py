"""schemathesis fuzzes a live `mxconv serve` from the service's own /openapi.json.

Every operation in the spec, at least 200 generated cases each under CI (50 locally; set
MXCONV_FUZZ_EXAMPLES to choose) where the operation takes
input (an operation without parameters or body has exactly one possible request), checked
for: no 5xx, status codes and content types the spec declares, bodies matching the declared
schemas. Keys are on, so the 401s and the bearer security scheme are exercised as well.

Reproduce a CI run by hand: MXCONV_FUZZ_SEED=<seed printed below> pytest tests/test_fuzz_openapi.py -s
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from mxconv_server.app import create_app

from .conftest import start_server

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
#: CI (CI=true) runs the full budget; a local `make test` a quarter of it, to stay near 8 minutes.
MAX_EXAMPLES = int(os.environ.get("MXCONV_FUZZ_EXAMPLES", "200" if os.environ.get("CI") == "true" else "50"))
SEED = int(os.environ.get("MXCONV_FUZZ_SEED", "20261129"))
KEY = "fuzz-key-3f9a"


@pytest.mark.timeout(420)
def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    server = start_server(tmp_path, MXCONV_API_KEYS=KEY)
    report_dir = tmp_path / "report"
    try:
        cmd = [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{server.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {KEY}",
            "--checks",
            CHECKS,
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--workers",
            "1",
            "--request-timeout",
            "60",
            "--generation-database",
            "none",
            "--no-color",
            "--report",
            "json,ndjson",
            "--report-dir",
            str(report_dir),
        ]
        # About 40 s here; cwd: schemathesis writes a .schemathesis/ folder.
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    finally:
        server.stop()
    print(proc.stdout[-6000:])
    reports = sorted(report_dir.glob("*.json"))
    assert reports, f"schemathesis wrote no report (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    report = json.loads(reports[-1].read_text())

    assert report["operations"]["errored"] == 0, report["errors"]
    assert not report["failures"], json.dumps(report["failures"], indent=1)[:6000]
    assert not report["errors"], json.dumps(report["errors"], indent=1)[:6000]
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert report["stop_reason"] == "completed", report["stop_reason"]

    spec_ops = report["operations"]["total"]
    assert report["operations"]["tested"] == spec_ops
    print(f"seed {SEED}: {report['test_cases']['generated']} cases over {spec_ops} operations")
    sent: Counter[str] = Counter()
    statuses: dict[str, Counter[int]] = {}
    for line in next(report_dir.glob("*.ndjson")).read_text().splitlines():
        event = json.loads(line).get("ScenarioFinished")
        if not event:
            continue
        op = event["recorder"]["label"]
        for interaction in event["recorder"].get("interactions", {}).values():
            sent[op] += 1
            response = interaction.get("response") or {}
            statuses.setdefault(op, Counter())[response.get("status_code", 0)] += 1
    for op in sorted(sent):
        print(f"  {op:28s} {sent[op]:5d} requests, by status {dict(sorted(statuses[op].items()))}")
    for op in report["valid_rates"]:
        if op.startswith(("POST", "PUT", "PATCH")) or "{" in op:
            assert sent[op] >= MAX_EXAMPLES, f"{op}: only {sent[op]} cases"
        if op.startswith(("POST", "PUT", "PATCH")) and "{" not in op:  # ids are random: 404s
            ok = sum(n for code, n in statuses[op].items() if 200 <= code < 300)
            assert ok > 0, f"{op}: no generated case was valid; is the spec's example off?"


# -- what the fuzzer found, pinned as plain tests (in-process, fast) ------------------------


@pytest.mark.parametrize(
    "shape",
    [[2**62, 2**62], [2**32, 2**32], [1e300], [7023, 18541776300829853340712042496]],
    ids=["int64-wrap", "int64-overflow-product", "float-inf-dim", "huge-dim"],
)
def test_huge_base64_shape_is_422_not_500(client, shape) -> None:
    # np.prod(shape, dtype=int64) raised OverflowError (a 500) or wrapped around.
    body = {"x": {"dtype": "float32", "shape": shape, "b64": ""}, "kernel": [[1.0]]}
    resp = client.post("/v1/corr2d", data=json.dumps(body), content_type="application/json")
    assert resp.status_code == 422, resp.data
    assert resp.get_json()["error"]["details"][0]["loc"] == ["x"]


def test_overflow_to_inf_is_null_in_lists_and_declared(client, app) -> None:
    # float32 overflow gives Inf, which JSON cannot hold: lists carry null, and the spec says so.
    resp = client.post("/v1/corr2d", json={"x": [[1e38, 1.0]], "kernel": [[10.0]]})
    assert resp.status_code == 200
    assert resp.get_json()["y"] == [[None, 10.0]]
    spec = client.get("/openapi.json").get_json()
    y_schema = spec["components"]["schemas"]["TensorResult"]["properties"]["y"]
    leaves = [s["items"] for s in y_schema["anyOf"] if s.get("type") == "array"]
    assert {"type": "null"} in leaves[0]["anyOf"]


def test_every_operation_declares_its_errors(app) -> None:
    """Generic over endpoints added later: what the plumbing can answer is in the spec, in the
    error shape of the route (/v2, the inference protocol, has its own, and 400 for 422)."""
    keyed = create_app({"api_keys": "k"})
    for flask_app, keys_on in ((app, False), (keyed, True)):
        spec = flask_app.test_client().get("/openapi.json", headers={"Authorization": "Bearer k"}).get_json()
        for path, item in spec["paths"].items():
            oip = path == "/v2" or path.startswith("/v2/")
            for method, op in item.items():
                codes = set(op["responses"])
                if "requestBody" in op:
                    assert {"400", "413", "415", "400" if oip else "422"} <= codes, (method, path, codes)
                if oip:
                    assert "422" not in codes, (method, path, codes)
                if "{" in path:
                    assert "404" in codes, (method, path, codes)
                public = path.startswith(("/v1/health/", "/v2/health/"))
                if keys_on and not public:
                    assert "401" in codes and op["security"] == [{"bearerAuth": []}], (method, path)
                error = "InferenceErrorResponse" if oip else "ErrorResponse"
                for code, response in op["responses"].items():
                    if code.startswith(("4", "5")) and code != "503":
                        schema = response["content"]["application/json"]["schema"]
                        assert schema == {"$ref": f"#/components/schemas/{error}"}, (path, code)


def test_huge_job_list_offset_is_422_not_500(client) -> None:
    # SQLite raised OverflowError on an offset past 64 bits (a 500).
    resp = client.get("/v1/jobs?offset=393664312606112409364463616")
    assert resp.status_code == 422, resp.data


def test_png_answers_are_declared(client) -> None:
    # /v1/images/filter answers image/png by default; the spec declared only JSON.
    spec = client.get("/openapi.json").get_json()
    content = spec["paths"]["/v1/images/filter"]["post"]["responses"]["200"]["content"]
    assert {"image/png", "application/json"} <= set(content)
