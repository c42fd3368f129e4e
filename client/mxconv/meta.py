"""The service itself: info and health."""

from __future__ import annotations

from . import schemas
from ._transport import Transport


class MetaAPI(Transport):
    def info(self) -> schemas.Info:
        """Versions, the device, the limits and the features of the server."""
        return self._get("/v1/info", schemas.Info)

    def health(self, ready: bool = True) -> schemas.Health:
        """Readiness (default) or liveness. A not-ready server raises ServiceUnavailableError."""
        path = "/v1/health/ready" if ready else "/v1/health/live"
        return self._get(path, schemas.Health, retry=False)
