-- hydro-rules schema v1: registry, telemetry, commands, alerts, events, water, aggregates, tokens.
-- Times are timestamptz (UTC). JSON is jsonb. Only hydro_rules.store writes these tables.

CREATE TABLE greenhouses (
    id          bigserial PRIMARY KEY,
    uid         text NOT NULL UNIQUE,
    site_uid    text NOT NULL,
    title       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE zones (
    id                   bigserial PRIMARY KEY,
    uid                  text NOT NULL UNIQUE,
    greenhouse_id        bigint NOT NULL REFERENCES greenhouses(id),
    title                text NOT NULL DEFAULT '',
    timezone             text NOT NULL DEFAULT 'UTC',
    profile              text,
    recipe               text,
    settings             jsonb NOT NULL DEFAULT '{}'::jsonb,
    water_state          text NOT NULL DEFAULT 'NORMAL_RECIRC',
    solution_started_at  timestamptz,
    engine_state         jsonb,             -- the rule engine's per-zone state; opaque to the store
    ruleset_version      text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE nodes (
    id                 bigserial PRIMARY KEY,
    uid                text NOT NULL UNIQUE,
    zone_id            bigint REFERENCES zones(id),
    node_type          text,
    hardware_id        text UNIQUE,
    validated          boolean NOT NULL DEFAULT false,
    first_seen_at      timestamptz,
    firmware_version   text,
    hardware_revision  text,
    capabilities       jsonb,
    status             text NOT NULL DEFAULT 'UNKNOWN' CHECK (status IN ('UNKNOWN', 'ONLINE', 'OFFLINE')),
    status_changed_at  timestamptz,
    last_seen_at       timestamptz,
    last_heartbeat_at  timestamptz,
    uptime_s           bigint,
    free_heap          bigint,
    rssi               integer,
    config_report      jsonb,
    diagnostics        jsonb,
    secret             text,                -- HMAC key for this node's commands
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Which node output each zone channel uses, and which node measures each metric (from the rule set).
CREATE TABLE zone_channels (
    zone_id      bigint NOT NULL REFERENCES zones(id) ON DELETE CASCADE,
    channel      text NOT NULL,
    kind         text NOT NULL,
    node_id      bigint NOT NULL REFERENCES nodes(id),
    channel_key  text NOT NULL,
    PRIMARY KEY (zone_id, channel)
);

CREATE TABLE zone_metrics (
    zone_id      bigint NOT NULL REFERENCES zones(id) ON DELETE CASCADE,
    metric_type  text NOT NULL,
    node_id      bigint NOT NULL REFERENCES nodes(id),
    PRIMARY KEY (zone_id, metric_type)
);

-- Raw samples. Partitioned by ts: a TimescaleDB hypertable when the extension can be loaded,
-- native daily range partitions otherwise (created ahead and on demand by the store).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS timescaledb;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'timescaledb is installed but cannot be loaded (%); using native partitions', SQLERRM;
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        CREATE TABLE telemetry_samples (
            ts           timestamptz NOT NULL,
            zone_id      bigint NOT NULL,
            node_id      bigint NOT NULL,
            metric_type  text NOT NULL,
            value        double precision NOT NULL,
            channel      text,
            raw          jsonb,
            received_at  timestamptz NOT NULL DEFAULT now()
        );
        PERFORM create_hypertable('telemetry_samples', 'ts', chunk_time_interval => interval '1 day');
    ELSE
        CREATE TABLE telemetry_samples (
            ts           timestamptz NOT NULL,
            zone_id      bigint NOT NULL,
            node_id      bigint NOT NULL,
            metric_type  text NOT NULL,
            value        double precision NOT NULL,
            channel      text,
            raw          jsonb,
            received_at  timestamptz NOT NULL DEFAULT now()
        ) PARTITION BY RANGE (ts);
    END IF;
END
$$;

-- A sample is identified by node, metric and time: a redelivered message is stored once.
CREATE UNIQUE INDEX telemetry_samples_identity ON telemetry_samples (node_id, metric_type, ts);
CREATE INDEX telemetry_samples_zone_metric_ts ON telemetry_samples (zone_id, metric_type, ts);
CREATE INDEX telemetry_samples_received ON telemetry_samples (received_at);

CREATE TABLE telemetry_last (
    zone_id      bigint NOT NULL REFERENCES zones(id),
    node_id      bigint NOT NULL REFERENCES nodes(id),
    metric_type  text NOT NULL,
    value        double precision NOT NULL,
    channel      text,
    raw          jsonb,
    ts           timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT telemetry_last_zone_node_metric UNIQUE (zone_id, node_id, metric_type)
);

CREATE TABLE commands (
    id               bigserial PRIMARY KEY,
    cmd_id           text NOT NULL UNIQUE CHECK (cmd_id ~ '^[A-Za-z0-9_-]{1,128}$'),
    zone_id          bigint REFERENCES zones(id),
    node_id          bigint NOT NULL REFERENCES nodes(id),
    channel          text,                  -- the zone's channel name
    channel_key      text NOT NULL,         -- the node's channel key
    cmd              text NOT NULL,
    params           jsonb NOT NULL DEFAULT '{}'::jsonb,
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'sent', 'ack', 'done', 'failed', 'timeout')),
    node_status      text,                  -- the last status word the node answered (DONE, NO_EFFECT, ...)
    error_code       text,
    error_message    text,
    details          jsonb,
    ruleset_version  text,
    rule             text,                  -- what caused it: a rule, a state, or "api"
    source           text NOT NULL DEFAULT 'engine',
    requested_by     text,
    reason           text,
    override         jsonb,                 -- a guard bypassed with the override scope: guard, reason, by
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    ack_at           timestamptz,
    done_at          timestamptz,
    failed_at        timestamptz,
    timeout_at       timestamptz,
    late_response_at timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX commands_zone_created ON commands (zone_id, created_at DESC);
CREATE INDEX commands_open ON commands (status, created_at) WHERE status IN ('queued', 'sent', 'ack');

-- Every response as received, duplicates included once: the record behind each status change.
CREATE TABLE command_responses (
    id           bigserial PRIMARY KEY,
    cmd_id       text NOT NULL,
    node_id      bigint REFERENCES nodes(id),
    status       text NOT NULL,
    ts           timestamptz NOT NULL,
    error_code   text,
    payload      jsonb NOT NULL,
    applied      boolean NOT NULL,          -- false: duplicate, stale or late, status left as it was
    received_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT command_responses_once UNIQUE (cmd_id, status, ts)
);

CREATE TABLE alerts (
    id               bigserial PRIMARY KEY,
    zone_id          bigint REFERENCES zones(id),
    node_id          bigint REFERENCES nodes(id),
    source           text NOT NULL CHECK (source IN ('biz', 'infra')),
    code             text NOT NULL,
    type             text NOT NULL,          -- words for people
    severity         text NOT NULL DEFAULT 'warning',
    channel          text,
    dedup_key        text NOT NULL DEFAULT '',
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,
    locks            boolean NOT NULL DEFAULT false,
    status           text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'RESOLVED')),
    occurrences      integer NOT NULL DEFAULT 1,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    resolved_by      text,
    resolved_reason  text,
    ruleset_version  text
);
-- One active alert per zone, code and channel (or node and metric for unknown metrics).
CREATE UNIQUE INDEX alerts_one_active ON alerts ((coalesce(zone_id, 0)), code, dedup_key) WHERE status = 'ACTIVE';
CREATE INDEX alerts_zone_status ON alerts (zone_id, status, last_seen_at DESC);

CREATE TABLE zone_events (
    id               bigserial PRIMARY KEY,
    zone_id          bigint REFERENCES zones(id),
    node_id          bigint REFERENCES nodes(id),
    type             text NOT NULL,
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,
    ruleset_version  text,
    ts               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX zone_events_zone_ts ON zone_events (zone_id, ts DESC);

CREATE TABLE water_usage_logs (
    id              bigserial PRIMARY KEY,
    zone_id         bigint NOT NULL REFERENCES zones(id),
    node_id         bigint REFERENCES nodes(id),
    pump_channel    text NOT NULL,
    cmd_id          text NOT NULL UNIQUE,
    volume_l        double precision,        -- NULL: no flow reading during the run
    duration_ms     bigint NOT NULL,
    avg_flow_l_min  double precision,
    details         jsonb NOT NULL DEFAULT '{}'::jsonb,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL
);
CREATE INDEX water_usage_logs_zone_started ON water_usage_logs (zone_id, started_at);

CREATE TABLE water_usage_daily (
    date              date NOT NULL,
    zone_id           bigint NOT NULL REFERENCES zones(id),
    total_volume_l    double precision NOT NULL DEFAULT 0,
    irrigation_count  integer NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (zone_id, date)
);

CREATE TABLE telemetry_agg_1m (
    bucket       timestamptz NOT NULL,
    zone_id      bigint NOT NULL,
    node_id      bigint NOT NULL,
    metric_type  text NOT NULL,
    min          double precision NOT NULL,
    max          double precision NOT NULL,
    avg          double precision NOT NULL,
    count        bigint NOT NULL,
    last         double precision NOT NULL,
    last_ts      timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (zone_id, node_id, metric_type, bucket)
);
CREATE INDEX telemetry_agg_1m_updated ON telemetry_agg_1m (updated_at);

CREATE TABLE telemetry_agg_1h (LIKE telemetry_agg_1m INCLUDING ALL);
CREATE TABLE telemetry_agg_daily (LIKE telemetry_agg_1m INCLUDING ALL);

CREATE TABLE aggregator_state (
    level       text PRIMARY KEY CHECK (level IN ('1m', '1h', 'daily', 'water')),
    last_ts     timestamptz NOT NULL,     -- watermark: input changed up to here is aggregated
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL,
    prefix        text NOT NULL UNIQUE,   -- the public part, to find the row
    token_hash    bytea NOT NULL,         -- sha256 of the whole token
    scopes        text[] NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
