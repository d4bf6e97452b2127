"""The Lambda service (`lambda`, rest-json): every operation mixin over the shared core."""

from __future__ import annotations

from .aliases import AliasesApi
from .invoke import InvokeApi
from .layers import LayersApi
from .resources import ResourcesApi


class LambdaService(InvokeApi, LayersApi, AliasesApi, ResourcesApi):
    """Functions, versions, aliases, layers, settings and invocations."""
