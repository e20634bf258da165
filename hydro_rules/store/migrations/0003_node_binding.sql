-- Binding a node (node protocol, "Binding a new node"): validation assigns the node a uid and a zone,
-- the service pushes its NodeConfig to hydro/gh-temp/zn-temp/{hardware_id}/config and the node is
-- "binding" until its config_report arrives under its new topics; then it is "bound".
ALTER TABLE nodes
    ADD COLUMN binding_state text NOT NULL DEFAULT 'unbound'
        CHECK (binding_state IN ('unbound', 'binding', 'bound')),
    ADD COLUMN config_pushed_at timestamptz,           -- the last NodeConfig push
    ADD COLUMN config_pushes integer NOT NULL DEFAULT 0,
    ADD COLUMN bound_at timestamptz;                   -- when the node confirmed its config

-- nodes validated into a zone before pushes existed were configured by hand: they are bound
UPDATE nodes SET binding_state = 'bound' WHERE validated AND zone_id IS NOT NULL;
