"""Read-model tables in PostgreSQL. Disposable: ``cairn projections rebuild`` recreates them."""

from __future__ import annotations

# Channel notified (payload: definition id) after each projection commit that touched a
# definition; in-memory caches (the ingestion registry) refresh from it.
DEFINITIONS_CHANNEL = "cairn_definitions"

TEMPLATE = """
CREATE TABLE IF NOT EXISTS rm_definitions{s} (
    id uuid PRIMARY KEY,
    business_line text NOT NULL,
    name text NOT NULL,
    display_name text,
    description text,
    owner text NOT NULL,
    requirement text,
    stage text NOT NULL,
    level text NOT NULL DEFAULT 'B',
    level_override text,
    level_reason text,
    core boolean NOT NULL DEFAULT false,
    health text NOT NULL DEFAULT 'UNKNOWN',
    health_since timestamptz,
    online_since timestamptz,
    live_version text,
    latest_version text,
    -- The live version's properties with the business line's global properties merged in:
    -- a JSON array of objects with keys name, type (STRING|NUMBER|INTEGER|BOOLEAN|
    --   DATETIME|LIST), required, description, enumValues
    live_properties jsonb,
    replaced_by uuid,
    revision integer NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    UNIQUE (business_line, name)
);
-- Columns added after the first release: existing tables get them here.
ALTER TABLE rm_definitions{s} ADD COLUMN IF NOT EXISTS health_since timestamptz;
ALTER TABLE rm_definitions{s} ADD COLUMN IF NOT EXISTS online_since timestamptz;
CREATE INDEX IF NOT EXISTS rm_definitions_page{s} ON rm_definitions{s} (business_line, name, id);
CREATE INDEX IF NOT EXISTS rm_definitions_stage{s} ON rm_definitions{s} (stage);

CREATE TABLE IF NOT EXISTS rm_schema_versions{s} (
    definition_id uuid NOT NULL,
    version text NOT NULL,
    seq integer NOT NULL,
    properties jsonb NOT NULL,
    breaking boolean NOT NULL,
    stage text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (definition_id, version)
);

CREATE TABLE IF NOT EXISTS rm_changes{s} (
    definition_id uuid NOT NULL,
    revision integer NOT NULL,
    type text NOT NULL,
    at timestamptz NOT NULL,
    actor text NOT NULL,
    note text,
    payload jsonb NOT NULL,
    business_line text NOT NULL,
    position bigint NOT NULL,
    PRIMARY KEY (definition_id, revision)
);
-- The alert outbox reads health and level changes after a position (cairn.notifications.outbox).
CREATE INDEX IF NOT EXISTS rm_changes{s}_type_position ON rm_changes{s} (type, position);

CREATE TABLE IF NOT EXISTS rm_global_properties{s} (
    business_line text PRIMARY KEY,
    version text NOT NULL,
    properties jsonb NOT NULL,
    revision integer NOT NULL,
    updated_at timestamptz NOT NULL
);

-- The latest health check of each definition: the projection writes the report recorded
-- with each HealthChanged; the monitor refreshes it after every run (newest checked_at wins).
CREATE TABLE IF NOT EXISTS rm_health{s} (
    definition_id uuid PRIMARY KEY,
    business_line text NOT NULL,
    status text NOT NULL,
    checked_at timestamptz NOT NULL,
    volume bigint NOT NULL,
    baseline double precision,
    invalid_rate double precision NOT NULL,
    reasons jsonb NOT NULL,
    report jsonb NOT NULL
);

CREATE TABLE IF NOT EXISTS projection_tracking (
    name text PRIMARY KEY,
    position bigint NOT NULL
);
"""

TABLES = ("rm_definitions", "rm_schema_versions", "rm_changes", "rm_global_properties",
          "rm_health")
DDL = TEMPLATE.format(s="")


def ddl(suffix: str) -> str:
    """The read-model tables under a suffix (a rebuild fills ``_next`` tables, then swaps)."""
    return TEMPLATE.format(s=suffix)
