"""Server settings, from command-line flags or `SQUALL_*` environment variables."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4566
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "000000000000"
AUTH_MODES = ("sigv4", "any")


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/squall`, else `~/.local/share/squall`."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "squall"


@dataclass(frozen=True)
class Settings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path = field(default_factory=default_data_dir)
    region: str = DEFAULT_REGION
    log_level: str = "info"
    auth: str = "sigv4"  # "any" accepts every access key without checking signatures
    max_body_bytes: int = 64 * 1024 * 1024
    max_header_bytes: int = 16 * 1024
    concurrency_limit: int = 1000  # the account's concurrent executions
    async_retry_delay_s: float = 60.0  # first retry of a failed async invoke; doubles after
    keep_alive_s: float = 600.0  # idle sandboxes live this long

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def run_dir(self) -> Path:
        """Runtime state that does not survive a restart: sockets, sandbox mount points."""
        return self.data_dir / "run"

    @property
    def api_socket(self) -> Path:
        """The unix socket the API also listens on (sandboxes reach squall through it).

        Under the run dir, unless that path is too long for a unix socket address.
        """
        path = self.run_dir / "api.sock"
        if len(str(path)) < 100:
            return path
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"squall-{digest}.sock"
