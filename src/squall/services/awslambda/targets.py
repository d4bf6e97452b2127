"""Functions as the targets of other services' events (S3 bucket notifications, later others).

:class:`LambdaTargets` is what an event source sees of Lambda: whether a function exists,
whether its resource policy lets a service principal invoke it, and a synchronous
asynchronous-invoke that joins the caller's open SQLite transaction.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from squall.core.errors import ServiceError
from squall.engine.async_queue import QueuedEvent

from .names import FunctionRef, parse_function
from .policy import allows
from .registry import Function

if TYPE_CHECKING:
    from .core import LambdaCore

INVOKE_ACTION = "lambda:InvokeFunction"


class LambdaTargets:
    """The functions of one Lambda service, as event sources address them: by full ARN,
    unqualified or qualified with a version or alias."""

    def __init__(self, core: LambdaCore) -> None:
        self._core = core

    def function_exists(self, arn: str) -> bool:
        return self._resolve(arn) is not None

    def allows(self, arn: str, *, principal: str, source_arn: str, source_account: str) -> bool:
        """Whether the function's resource policy (the one AddPermission built for this
        qualifier) lets service `principal` invoke it for this source."""
        found = self._resolve(arn)
        if found is None:
            return False
        function, ref = found
        return allows(
            function.policies.get(ref.qualifier or ""),
            action=INVOKE_ACTION,
            principal_service=principal,
            source_arn=source_arn,
            source_account=source_account,
            resource_arn=ref.qualified_arn(),
        )

    def enqueue(self, arn: str, payload: bytes) -> None:
        """Queue an asynchronous invocation exactly as Invoke with InvocationType=Event does;
        inside a transaction open on the store it commits (or rolls back) with it.

        A function that no longer exists when the event is due is dropped then, as for any
        asynchronous invocation."""
        ref = parse_function(arn, "", "")
        now = time.time()
        self._core.queue.add(
            QueuedEvent(
                id=str(uuid.uuid4()),
                target=ref.arn,
                qualifier=ref.qualifier,
                payload=payload,
                received_at=now,
                not_before=now,
                context={},
            )
        )

    def _resolve(self, arn: str) -> tuple[Function, FunctionRef] | None:
        if not arn.startswith("arn:"):
            return None
        try:
            ref = parse_function(arn, "", "")
        except ServiceError:
            return None
        function = self._core.registry.function(ref.key)
        if function is None:
            return None
        qualifier = ref.qualifier
        if qualifier and qualifier not in function.versions and qualifier not in function.aliases:
            return None
        return function, ref
