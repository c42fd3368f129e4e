"""Settings from ``MXCONV_*`` environment variables (docs/settings.md lists them)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MXCONV_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address gunicorn binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port gunicorn binds to.")
    workers: int = Field(2, ge=1, le=64, description="gunicorn worker processes.")
    omp_threads: int = Field(
        0,
        ge=0,
        le=256,
        description="OpenMP threads per worker; 0 means cores / workers (at least 1).",
    )
    device: str = Field(
        "cpu", description="cpu, gpu, gpu:N or auto. Asking for a missing GPU fails at startup."
    )
    api_keys: str = Field(
        "",
        description="Comma-separated API keys. When set, all but /v1/health/* need one.",
        repr=False,  # secrets stay out of logs and tracebacks that print the settings
    )
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Largest request body.")
    body_timeout: float = Field(
        60, gt=0, le=3600, description="Seconds a request body may take to arrive (408 beyond)."
    )
    max_tensor_elements: int = Field(
        16 * 1024 * 1024, ge=1, description="Largest input or output tensor, in elements."
    )
    max_flops: int = Field(
        50 * 10**9, ge=1, description="Largest computation one request may ask for, in FLOPs."
    )
    max_request_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description=(
            "Longest a request's work may take once its body has arrived: work the cost model "
            "predicts longer is refused with 413 before it starts; work that runs longer is "
            "stopped with 504."
        ),
    )
    cost_scale: float = Field(
        1.0,
        gt=0,
        le=1000,
        description=(
            "Multiplies the cost model's predicted seconds: above 1 on a machine slower than the "
            "one it was calibrated on (python -m benchmarks.calibrate)."
        ),
    )
    max_signal_samples: int = Field(
        20_000, ge=2, description="Largest LTI time grid (duration/dt + 1) one request may ask for."
    )
    max_image_pixels: int = Field(
        16 * 1024 * 1024,
        ge=1,
        description="Largest image (width x height) /v1/images/filter decodes; 413 beyond.",
    )
    log_format: Literal["json", "text"] = Field(
        "json", description="json: one JSON object a line, with request ids; text: plain lines."
    )
    data_dir: Path = Field(Path("./mxconv-data"), description="Where the embedded job store lives.")
    log_level: str = Field("INFO", description="Python log level.")

    # Training jobs (issue 3).
    jobs_url: str = Field(
        "", description="Job store URL; empty means sqlite:///<data_dir>/jobs.sqlite3 (embedded)."
    )
    job_workers: int = Field(1, ge=0, le=64, description="Job worker processes `mxconv serve` runs.")
    job_omp_threads: int = Field(
        0, ge=0, le=256, description="OpenMP threads per job worker; 0 means cores / job workers."
    )
    max_queued_jobs: int = Field(100, ge=1, description="Queued jobs beyond which submit gets 429.")
    max_job_epochs: int = Field(100_000, ge=1, description="Largest epochs a job may ask for.")
    max_job_elements: int = Field(
        4 * 1024 * 1024, ge=1, description="Largest training sample: elements of x plus y."
    )
    max_job_parameters: int = Field(
        16 * 1024 * 1024, ge=1, description="Largest network a job may train, in parameters."
    )
    max_job_seconds: float = Field(
        3600.0, gt=0, description="Wall time after which a running job fails with a reason."
    )
    startup_timeout: float = Field(
        30.0,
        ge=0,
        le=3600,
        description=(
            "Seconds start-up waits for an unreachable job store (a Redis still starting) before "
            "it exits with one line."
        ),
    )
    job_lease_seconds: float = Field(
        30.0, gt=0, description="A worker that has not renewed its job's lease this long is presumed dead."
    )
    job_max_attempts: int = Field(
        3, ge=1, description="Runs a job gets when its worker dies, before it is marked failed."
    )

    @property
    def jobs_store_url(self) -> str:
        return self.jobs_url or f"sqlite:///{self.data_dir.resolve() / 'jobs.sqlite3'}"

    def job_threads(self) -> int:
        if self.job_omp_threads:
            return self.job_omp_threads
        return max(1, (os.cpu_count() or 1) // max(1, self.job_workers))

    @property
    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]

    def threads_per_worker(self) -> int:
        if self.omp_threads:
            return self.omp_threads
        return max(1, (os.cpu_count() or 1) // self.workers)

    def worker_env(self) -> dict[str, str]:
        """The environment one worker computes with; set before MXNet loads (gunicorn_conf,
        benchmarks). The measurements behind each value are in gunicorn_conf.py."""
        return {
            "OMP_NUM_THREADS": str(self.threads_per_worker()),
            "OMP_WAIT_POLICY": "passive",
            "MXNET_ENGINE_TYPE": "NaiveEngine",
            "MXNET_CPU_TEMP_COPY": "1",
        }
