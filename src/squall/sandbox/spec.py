"""What a sandbox is asked to run: one function version's configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_TMP_MB = 512


@dataclass(frozen=True)
class FunctionSpec:
    """A function version as the sandbox layer needs it (the Lambda service builds these)."""

    name: str
    version: str
    arn: str
    runtime: str
    handler: str
    code_dir: str
    memory_mb: int = 128
    timeout_s: float = 3.0
    environment: dict[str, str] = field(default_factory=dict)
    opt_dir: str | None = None
    ephemeral_mb: int = DEFAULT_TMP_MB
    region: str = "us-east-1"
    log_group: str = ""
    # changes whenever $LATEST's code or configuration does: old sandboxes are never reused
    revision: str = ""
    log_format: str = "Text"  # LoggingConfig.LogFormat: "Text" or "JSON"
    application_log_level: str | None = None  # JSON format only: the runtime's level
    system_log_level: str | None = None  # JSON format only: which platform records appear

    @property
    def key(self) -> str:
        """Sandboxes are pooled per function version (and revision of that version)."""
        return f"{self.arn}:{self.version}:{self.revision}"

    @property
    def log_group_name(self) -> str:
        return self.log_group or f"/aws/lambda/{self.name}"
