-- Commands end (issue 8): every command carries its own response timeout, a response is told
-- apart by who sent it, refused commands leave an audit row, and a restart remembers the NC
-- pumps it switched off until they are switched on again.

-- The zone's `commands.response_timeout` when the command was created; the service's sweep
-- times the command out after it (NULL: rows from before this migration, the sweep's default).
ALTER TABLE commands ADD COLUMN response_timeout_s double precision
    CHECK (response_timeout_s IS NULL OR response_timeout_s > 0);

-- A restart of a node that drives NC pumps: their relays boot OPEN (the pumps stand still), so
-- the service switches them on again once the node is back. `reassert_open` holds until the
-- node is seen booted after the restart; `reasserted_at` is when the service last sent them on.
ALTER TABLE commands ADD COLUMN reassert_channels text[];
ALTER TABLE commands ADD COLUMN reassert_open boolean NOT NULL DEFAULT false;
ALTER TABLE commands ADD COLUMN reasserted_at timestamptz;
CREATE INDEX commands_reassert_open ON commands (node_id) WHERE reassert_open;

-- Who sent a response (the node uid of its topic, known node or not), and whether it was another
-- node than the command's: a foreign response is kept for the record and changes nothing. The
-- same words from two senders are two responses, so a foreign copy never hides the real one.
ALTER TABLE command_responses ADD COLUMN sender_uid text NOT NULL DEFAULT '';
UPDATE command_responses r SET sender_uid = n.uid FROM nodes n WHERE n.id = r.node_id;
ALTER TABLE command_responses ADD COLUMN foreign_sender boolean NOT NULL DEFAULT false;
ALTER TABLE command_responses DROP CONSTRAINT command_responses_once;
ALTER TABLE command_responses ADD CONSTRAINT command_responses_once UNIQUE (cmd_id, sender_uid, status, ts);

-- Commands the API refused (403, 404, 409, 422, ...): who asked, what, and why it was refused.
CREATE TABLE command_refusals (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    token_name    text,                  -- who: the token's name ("service" for its own re-assertions)
    token_scopes  text[],
    zone_uid      text,                  -- what, as far as the request said it
    channel       text,
    cmd           text,
    params        jsonb,
    reason        text,
    override      boolean,
    http_status   integer NOT NULL,      -- why
    code          text NOT NULL,
    message       text NOT NULL,
    guard         text,                  -- the refusing guard, for 409 guard_refused
    details       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX command_refusals_at ON command_refusals (at DESC);
CREATE INDEX command_refusals_zone_at ON command_refusals (zone_uid, at DESC);
