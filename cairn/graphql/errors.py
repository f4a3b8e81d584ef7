"""Map every error to ``extensions.code`` once, at the edge; refuse unauthenticated calls.

Three kinds of error reach a client:

- about the request itself (syntax, validation, a variable of the wrong type, an unknown
  input field, a limit): ``VALIDATION``, with graphql-core's message naming the variable
  or field;
- a Cairn error raised on purpose (``cairn.errors``): its own code and message;
- anything else: ``INTERNAL`` with a bland message; its traceback is logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionContext, StreamExecutionResult

from cairn.errors import CairnError

log = logging.getLogger(__name__)


def _cairn_cause(error: GraphQLError) -> CairnError | None:
    """The Cairn error behind a (possibly wrapped) GraphQL error, if any."""
    original: BaseException | None = error.original_error
    for _ in range(8):  # graphql-core wraps coercion errors in one another
        if isinstance(original, CairnError):
            return original
        if not isinstance(original, GraphQLError):
            return None
        original = original.original_error
    return None


def classify(error: GraphQLError, about_request: bool) -> tuple[str, str]:
    """(code, message) for one error; ``about_request``: raised before any field ran."""
    cause = _cairn_cause(error)
    if cause is not None:
        return cause.code, str(cause) or cause.code
    if about_request or error.original_error is None:
        return "VALIDATION", error.message
    return "INTERNAL", "internal error"


def coded(error: GraphQLError, about_request: bool = False) -> GraphQLError:
    if error.extensions and "code" in error.extensions:
        return error
    code, message = classify(error, about_request)
    if code == "INTERNAL":
        log.error("unexpected error", extra={"path": error.path},
                  exc_info=error.original_error)
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None if code == "INTERNAL" else error.original_error,
        extensions={**(error.extensions or {}), "code": code},
    )


class ErrorCodes(SchemaExtension):
    """Codes every error of an operation (and of each streamed subscription result) once."""

    def __init__(self, *, execution_context: ExecutionContext | None = None) -> None:
        # Keyed by id(): each entry keeps its error alive, so an id is never reused here.
        self._about_request: dict[int, GraphQLError] = {}
        self._done: dict[int, tuple[GraphQLError, GraphQLError]] = {}

    def _mark(self, errors: Sequence[GraphQLError] | None) -> None:
        self._about_request.update((id(e), e) for e in errors or ())

    def _code_all(self, errors: Sequence[GraphQLError]) -> list[GraphQLError]:
        # strawberry keeps one error list on both the result and pre_execution_errors:
        # each error is coded (and an INTERNAL one logged) exactly once.
        out = []
        for error in errors:
            key = id(error)
            if key not in self._done:
                self._done[key] = (error, coded(error, key in self._about_request))
            out.append(self._done[key][1])
        return out

    def on_parse(self) -> Iterator[None]:
        yield
        self._mark(self.execution_context.pre_execution_errors)

    def on_validate(self) -> Iterator[None]:
        yield
        self._mark(self.execution_context.pre_execution_errors)

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
        result = self.execution_context.result
        if isinstance(result, GraphQLExecutionResult) and result.errors:
            # Errors without a path come from coercing the variables, before any field ran.
            self._mark([e for e in result.errors if e.path is None])

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None) if result is not None else None
        if errors:
            result.errors = self._code_all(errors)  # type: ignore[union-attr]
        pre = self.execution_context.pre_execution_errors
        if pre:
            self.execution_context.pre_execution_errors = self._code_all(pre)

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        # Subscriptions: each result sent over the websocket carries its codes too.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._code_all(errors)  # type: ignore[union-attr]
        yield
