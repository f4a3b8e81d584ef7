"""Limits on what one GraphQL request may ask for, checked before anything runs.

Depth, aliases and tokens bound the document (strawberry's limiters: introspection fields
are not counted, so GraphiQL's schema query passes); at most ``MAX_ANALYTICS`` analyses per
request, since each one is a ClickHouse query; and no string anywhere in the request may hold
a NUL byte, which PostgreSQL refuses in text (a literal in the document or any variable,
however deeply nested in an input object, a list or a JSON value).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    GraphQLError,
    StringValueNode,
    ValidationContext,
    ValidationRule,
)
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)

MAX_DEPTH = 12
MAX_ALIASES = 50
MAX_TOKENS = 5000
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


def extensions() -> list[Callable[[], SchemaExtension] | type[SchemaExtension]]:
    """Factories: strawberry builds each limiter per request."""
    return [
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: AddValidationRules([AnalyticsBudget, NoNulLiterals]),
        NoNulVariables,
    ]
