"""Settings from ``MXCONV_*`` environment variables (the README's settings table lists them)."""

from __future__ import annotations

import os
from pathlib import Path

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
    max_signal_samples: int = Field(
        20_000, ge=2, description="Largest LTI time grid (duration/dt + 1) one request may ask for."
    )
    data_dir: Path = Field(Path("./mxconv-data"), description="Where the embedded job store lives.")
    log_level: str = Field("INFO", description="Python log level.")

    @property
    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]

    def threads_per_worker(self) -> int:
        if self.omp_threads:
            return self.omp_threads
        return max(1, (os.cpu_count() or 1) // self.workers)
