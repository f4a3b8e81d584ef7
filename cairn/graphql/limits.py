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
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from graphql import (
    ASTValidationRule,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    StringValueNode,
    ValidationContext,
    ValidationRule,
    parse,
)
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.schema import validate_document

MAX_DEPTH = 12
MAX_ALIASES = 50
MAX_TOKENS = 3000
MAX_DOCUMENT_CHARS = 65_536
# Shorter documents are parsed on the loop (a few milliseconds at most).
INLINE_CHARS = 512
MAX_ANALYTICS = 5
# Root fields that each run ClickHouse work; later analyses join this set.
ANALYTICS_FIELDS = frozenset({"eventTrend", "formulaTrend", "funnel", "retention", "paths",
                              "userTimeline", "quarantine", "versionHealth"})
NUL = "\x00"
T = TypeVar("T")


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


class _Recent(OrderedDict[str, T]):
    """The last few documents' parse and verdict: polling dashboards send the same ones."""

    def __init__(self, size: int = 256) -> None:
        super().__init__()
        self.size = size

    def remember(self, key: str, value: T) -> T:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
        return value


_DOCUMENTS: _Recent[DocumentNode] = _Recent()
_VERDICTS: _Recent[list[GraphQLError]] = _Recent()


class OffLoopDocument(SchemaExtension):
    """Parse (when long) and validate the document in a worker thread, or recall a recent
    one's: graphql-core's parser (~20 us a token) and its validation (~10 ms even for a small
    document, with every rule) are pure Python and would hold the event loop. Too long a text
    is refused before any parsing."""

    async def on_parse(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        text = ctx.query
        if ctx.graphql_document is None and text:
            try:
                if len(text) > MAX_DOCUMENT_CHARS:
                    raise GraphQLError(f"the document is {len(text)} characters long; "
                                       f"at most {MAX_DOCUMENT_CHARS}")
                known = _DOCUMENTS.get(text)
                if known is None:
                    known = (parse(text, **ctx.parse_options) if len(text) <= INLINE_CHARS
                             else await asyncio.to_thread(parse, text, **ctx.parse_options))
                    _DOCUMENTS.remember(text, known)
                ctx.graphql_document = known
            except GraphQLError as error:
                # Reported as a validation error of a stand-in document: strawberry then
                # neither parses the text again nor validates, and answers with this error.
                ctx.graphql_document = _STAND_IN
                ctx.pre_execution_errors = [error]
        yield

    async def on_validate(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        document, text = ctx.graphql_document, ctx.query
        if ctx.pre_execution_errors is None and document is not None and text and \
                ctx.validation_rules:
            verdict = _VERDICTS.get(text)
            if verdict is None:
                verdict = _VERDICTS.remember(text, await asyncio.to_thread(
                    validate_document, ctx.schema._schema, document, ctx.validation_rules))
            # strawberry skips its own validation once the errors (maybe none) are known.
            ctx.pre_execution_errors = list(verdict)
        yield


def extensions() -> list[Callable[[], SchemaExtension] | type[SchemaExtension]]:
    """Factories: strawberry builds each limiter per request."""
    return [
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        OffLoopDocument,
        lambda: AddValidationRules(RULES),
        NoNulVariables,
    ]


# strawberry's depth and alias limiters, built once: their factories make a new rule class on
# every call, and graphql-core then re-derives each visitor's methods for every request.
RULES: list[type[ASTValidationRule]] = [
    depth_rule(MAX_DEPTH, None, None), alias_rule(MAX_ALIASES), AnalyticsBudget, NoNulLiterals]
