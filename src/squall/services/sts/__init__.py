"""STS: who am I (GetCallerIdentity)."""

from .service import StsService

__all__ = ["StsService"]
