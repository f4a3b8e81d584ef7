"""Limits on what one GraphQL request may ask for, checked before anything runs.

Size, tokens, depth and aliases bound the document, which is parsed off the event loop
(strawberry's limiters; introspection fields are not counted, so GraphiQL's schema query
passes); at most ``MAX_ANALYTICS`` analyses per request, since each one is ClickHouse work;
and no string anywhere in the request may hold a NUL byte, which PostgreSQL refuses in text
(a literal in the document or any variable, however deeply nested in an input object, a list
or a JSON value).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    GraphQLError,
    StringValueNode,
    ValidationContext,
    ValidationRule,
    parse,
)
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.schema import validate_document

MAX_DEPTH = 12
MAX_ALIASES = 50
MAX_TOKENS = 3000
MAX_DOCUMENT_CHARS = 65_536
# Shorter documents are parsed and validated on the loop: it takes about a millisecond, less
# than a worker thread's round trip and its contention for the interpreter.
INLINE_CHARS = 4096
MAX_ANALYTICS = 5
# Root fields that each run ClickHouse work; later analyses join this set.
ANALYTICS_FIELDS = frozenset({"eventTrend", "formulaTrend", "funnel", "retention", "paths",
                              "userTimeline", "quarantine", "versionHealth"})
NUL = "\x00"


class AnalyticsBudget(ValidationRule):
    """At most MAX_ANALYTICS analytics fields (counted by name, aliases included)."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.count = 0

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        parent = self.context.get_parent_type()
        if parent is not None and parent.name == "Query" and \
                node.name.value in ANALYTICS_FIELDS:
            self.count += 1
            if self.count == MAX_ANALYTICS + 1:
                self.report_error(GraphQLError(
                    f"a request may run at most {MAX_ANALYTICS} analyses "
                    f"({', '.join(sorted(ANALYTICS_FIELDS))}); send the rest separately",
                    node))


class NoNulLiterals(ValidationRule):
    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        if NUL in node.value:
            self.report_error(GraphQLError("a string may not contain a NUL byte", node))


def nul_path(value: Any, path: str) -> str | None:
    """Where in ``value`` a string (or an object key) holds a NUL byte, if anywhere."""
    if isinstance(value, str):
        return path if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and NUL in key:
                return f"{path} (a key)"
            found = nul_path(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


class NoNulVariables(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        ctx = self.execution_context
        if ctx.result is None:
            for name, value in (ctx.variables or {}).items():
                where = nul_path(value, f"${name}")
                if where:
                    ctx.result = ExecutionResult(data=None, errors=[GraphQLError(
                        f"Variable {where} may not contain a NUL byte",
                        extensions={"code": "VALIDATION"})])
                    break
        yield


_STAND_IN = parse("{ __typename }")


class OffLoopDocument(SchemaExtension):
    """Parse and validate a long document in a worker thread: graphql-core's parser (~20 us
    a token) and its validation rules are pure Python and would hold the event loop. Too long
    a text is refused before any parsing."""

    async def on_parse(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        if ctx.graphql_document is None and ctx.query:
            try:
                if len(ctx.query) > MAX_DOCUMENT_CHARS:
                    raise GraphQLError(f"the document is {len(ctx.query)} characters long; "
                                       f"at most {MAX_DOCUMENT_CHARS}")
                if len(ctx.query) <= INLINE_CHARS:
                    ctx.graphql_document = parse(ctx.query, **ctx.parse_options)
                else:
                    ctx.graphql_document = await asyncio.to_thread(parse, ctx.query,
                                                                   **ctx.parse_options)
            except GraphQLError as error:
                # Reported as a validation error of a stand-in document: strawberry then
                # neither parses the text again nor validates, and answers with this error.
                ctx.graphql_document = _STAND_IN
                ctx.pre_execution_errors = [error]
        yield

    async def on_validate(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        document = ctx.graphql_document
        if ctx.pre_execution_errors is None and document is not None and \
                ctx.validation_rules and len(ctx.query or "") > INLINE_CHARS:
            # strawberry skips its own validation once the errors (maybe none) are known.
            ctx.pre_execution_errors = await asyncio.to_thread(
                validate_document, ctx.schema._schema, document, ctx.validation_rules)
        yield


def extensions() -> list[Callable[[], SchemaExtension] | type[SchemaExtension]]:
    """Factories: strawberry builds each limiter per request."""
    return [
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        OffLoopDocument,
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: AddValidationRules([AnalyticsBudget, NoNulLiterals]),
        NoNulVariables,
    ]
