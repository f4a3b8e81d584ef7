"""PostgreSQL tables the monitor owns. Not projections: they record what the monitor did
(mails sent) and saw (unknown event names), which the event store does not hold."""

from __future__ import annotations

DDL = """
-- One row per definition ever mailed about: the throttle (at most one mail per hour) and
-- what is still owed (a change that arrived while throttled).
CREATE TABLE IF NOT EXISTS health_mail_state (
    definition_id uuid PRIMARY KEY,
    last_sent_at timestamptz,
    last_sent_status text,
    pending boolean NOT NULL DEFAULT false
);

-- Event names seen in quarantine as unknown_event, per business line, so someone can
-- register or block them.
CREATE TABLE IF NOT EXISTS unknown_events (
    business_line text NOT NULL,
    event text NOT NULL,
    first_seen timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    last_window_count bigint NOT NULL,
    checked_at timestamptz NOT NULL,
    PRIMARY KEY (business_line, event)
);
"""
