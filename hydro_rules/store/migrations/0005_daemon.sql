-- The site daemon (issue 9): its decision log, its heartbeat, and the rule behind each alert and event.

-- The decision log (the plan's ai_logs): every transition, command, refusal, alert change, reset,
-- recovery, rule-set change, re-assertion, ownership change and dead-man action, with the rule
-- that caused it (its span) and the values the daemon saw, worded as the dry-run timeline words it.
CREATE TABLE decisions (
    id               bigserial PRIMARY KEY,
    zone_id          bigint NOT NULL REFERENCES zones(id),
    at               timestamptz NOT NULL,
    kind             text NOT NULL,         -- transition | command | refusal | held | alert_raised | alert_resolved |
                                            -- event | reset | recovery | ruleset | reassert | ownership | deadman
    ruleset_version  text NOT NULL,
    rule             text,                  -- e.g. "state WATER_CHANGE_DRAIN (rules/water_cycle.hydro:29)"
    channel          text,
    summary          text NOT NULL,         -- one line
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,  -- {"values": {metric: value}, ...}
    daemon_id        text
);
CREATE INDEX decisions_zone_at ON decisions (zone_id, at, id);

-- One row per daemon process: its heartbeat (`beat_at`) and the zones it owns. Another daemon
-- or the service reads it to tell a live daemon from a dead one.
CREATE TABLE daemons (
    daemon_id        text PRIMARY KEY,
    host             text,
    pid              integer,
    started_at       timestamptz NOT NULL DEFAULT now(),
    beat_at          timestamptz NOT NULL,
    stopped_at       timestamptz,
    ruleset_version  text,
    zones            text[] NOT NULL DEFAULT '{}'
);

-- The causing rule (file:line) of an alert and of an event, as commands already have it.
ALTER TABLE alerts ADD COLUMN rule text;
ALTER TABLE zone_events ADD COLUMN rule text;
