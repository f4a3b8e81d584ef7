"""What every analysis shares: the range input, person resolution, guard rails, running."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from cairn.errors import ValidationFailed
from cairn.olap.port import ClickHouse, OlapError, Param, Row
from cairn.olap.queries.filters import Binder, Filter, filters_sql

MAX_RANGE = timedelta(days=400)
MAX_EXECUTION_SECONDS = 30
MAX_RESULT_ROWS = 100_000
MAX_MEMORY_BYTES = 4_000_000_000
DT = "DateTime64(3, 'UTC')"

# Resolved person at query time: an anonymous id linked by an identify event counts as its
# user even for events sent before the link (person_id was written before the link existed).
# The latest link of an anonymous id wins, as in the identities table's replacing key.
PERSON_SOURCE = (
    "events AS e LEFT ANY JOIN (SELECT anonymous_id AS link_anon, "
    "argMax(user_id, linked_at) AS link_user FROM identities GROUP BY anonymous_id) AS l "
    "ON e.person_id = l.link_anon"
)
PERSON = "if(l.link_user != '', l.link_user, e.person_id)"

SETTINGS = (
    f" SETTINGS max_execution_time = {MAX_EXECUTION_SECONDS}, "
    f"max_result_rows = {MAX_RESULT_ROWS}, result_overflow_mode = 'throw', "
    f"max_memory_usage = {MAX_MEMORY_BYTES}, join_use_nulls = 0"
)


def utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC, as the contract says every time is."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def ms(value: datetime) -> int:
    return int(utc(value).timestamp() * 1000)


def from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


class RangeInput(BaseModel):
    """A half-open range [from, to) on one business line (None: every line), with filters."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    business_line: str | None = None
    from_: datetime
    to: datetime
    filters: tuple[Filter, ...] = ()

    @field_validator("from_", "to")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return utc(value)

    @model_validator(mode="after")
    def _range(self) -> RangeInput:
        if self.to <= self.from_:
            raise ValidationFailed("`to` must be after `from`")
        if self.to - self.from_ > MAX_RANGE:
            raise ValidationFailed(f"the range may span at most {MAX_RANGE.days} days")
        return self

    def where(self, binder: Binder, *, upper: datetime | None = None,
              time_column: str = "timestamp") -> list[str]:
        """Business line, time range (optionally widened) and filters, as SQL conditions."""
        conds = [
            f"{time_column} >= {binder.bind(self.from_, DT)}",
            f"{time_column} < {binder.bind(upper or self.to, DT)}",
        ]
        if self.business_line is not None:
            conds.insert(0, f"business_line = {binder.bind(self.business_line, 'String')}")
        return conds + filters_sql(self.filters, binder)


_TIMEOUT = re.compile(r"TIMEOUT_EXCEEDED|Timeout exceeded", re.IGNORECASE)
_TOO_BIG = re.compile(r"MEMORY_LIMIT_EXCEEDED|TOO_MANY_ROWS|Limit for result exceeded",
                      re.IGNORECASE)


async def fetch(store: ClickHouse, sql: str, params: dict[str, Param],
                extra_settings: str = "") -> list[Row]:
    """Run an analysis; the engine's guard rails come back as VALIDATION, never INTERNAL."""
    try:
        return await store.fetch(sql + SETTINGS + extra_settings, params)
    except OlapError as exc:
        text = str(exc)
        if _TIMEOUT.search(text):
            raise ValidationFailed(
                f"the query ran past {MAX_EXECUTION_SECONDS} s: narrow the range or add filters"
            ) from exc
        if _TOO_BIG.search(text):
            raise ValidationFailed(
                "the query needs too much memory or returns too many rows: narrow it"
            ) from exc
        raise
