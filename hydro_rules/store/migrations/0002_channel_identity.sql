-- Channel identity (issue 8): a node can send one metric on several channels (four float switches,
-- pump_bus_current beside a pump's own current), and each channel is its own series.

-- A sample is (node, channel, metric, ts, value): only a true redelivery is stored once; the same
-- series with another value at the same ts is kept. channel is NULL for HTTP samples without one,
-- and NULLs count as equal. The index holds ts, as a hypertable's or a partitioned table's must.
DROP INDEX telemetry_samples_identity;
CREATE UNIQUE INDEX telemetry_samples_identity
    ON telemetry_samples (node_id, channel, metric_type, ts, value) NULLS NOT DISTINCT;

-- A simulated reading from a node without its sensor fitted: stored for the record, never in
-- telemetry_last, so rules never see it.
ALTER TABLE telemetry_samples ADD COLUMN stub boolean NOT NULL DEFAULT false;

-- The newest value per zone, node, metric and channel.
ALTER TABLE telemetry_last DROP CONSTRAINT telemetry_last_zone_node_metric;
ALTER TABLE telemetry_last ADD CONSTRAINT telemetry_last_identity
    UNIQUE NULLS NOT DISTINCT (zone_id, node_id, metric_type, channel);

-- Aggregates per channel too ('' for samples without one: a key column cannot be NULL).
-- Rows made before this migration hold every channel of a node's metric under ''.
ALTER TABLE telemetry_agg_1m ADD COLUMN channel text NOT NULL DEFAULT '';
ALTER TABLE telemetry_agg_1m DROP CONSTRAINT telemetry_agg_1m_pkey;
ALTER TABLE telemetry_agg_1m ADD PRIMARY KEY (zone_id, node_id, metric_type, channel, bucket);
ALTER TABLE telemetry_agg_1h ADD COLUMN channel text NOT NULL DEFAULT '';
ALTER TABLE telemetry_agg_1h DROP CONSTRAINT telemetry_agg_1h_pkey;
ALTER TABLE telemetry_agg_1h ADD PRIMARY KEY (zone_id, node_id, metric_type, channel, bucket);
ALTER TABLE telemetry_agg_daily ADD COLUMN channel text NOT NULL DEFAULT '';
ALTER TABLE telemetry_agg_daily DROP CONSTRAINT telemetry_agg_daily_pkey;
ALTER TABLE telemetry_agg_daily ADD PRIMARY KEY (zone_id, node_id, metric_type, channel, bucket);
