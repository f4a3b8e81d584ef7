"""Map every error to ``extensions.code`` once, at the edge; refuse unauthenticated calls."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from cairn.errors import CairnError

log = logging.getLogger(__name__)


def coded(error: GraphQLError) -> GraphQLError:
    if error.extensions and "code" in error.extensions:
        return error
    original = error.original_error
    if isinstance(original, CairnError):
        code, message = original.code, str(original) or original.code
    elif original is None:
        # Parse and validation errors of the document itself.
        code, message = "VALIDATION", error.message
    else:
        log.error("unexpected resolver error", exc_info=original)
        code, message = "INTERNAL", "internal error"
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None if code == "INTERNAL" else original,
        extensions={**(error.extensions or {}), "code": code},
    )


class ErrorCodes(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        principal = getattr(context, "principal", None)
        if principal is None:
            message = getattr(context, "auth_error", None) or "missing bearer token"
            self.execution_context.result = GraphQLExecutionResult(
                data=None,
                errors=[GraphQLError(message, extensions={"code": "UNAUTHENTICATED"})],
            )
        yield

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None) if result is not None else None
        if errors:
            result.errors = [coded(e) for e in errors]  # type: ignore[union-attr]
        pre = self.execution_context.pre_execution_errors
        if pre:
            self.execution_context.pre_execution_errors = [coded(e) for e in pre]
