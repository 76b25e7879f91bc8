-- agentkit store schema, version 1.
--
-- Conventions:
-- * Every table has a `tenant` column; every primary key starts with it; every query of the
--   store filters by it. Row-level security (at the end of this file) enforces the same rule a
--   second time: a session sees only the rows of the tenant named by the transaction-local
--   setting `agentkit.tenant`, which the store sets at the start of every operation.
-- * Identifiers and keys use the "C" collation: comparisons are byte-wise (fast, and the order
--   `list_memory` and the approval queue return is the order Rust's `str` comparison gives).
-- * Timestamps are `timestamptz` (microsecond precision).
-- * Structured values are `json` (stored verbatim: exact round trips, `\u0000` escapes allowed).
-- * usage_events and audit_entries are append-only: UPDATE/DELETE/TRUNCATE privileges are revoked
--   and statement triggers refuse those commands for every role that still has them.

CREATE TABLE sessions (
    tenant     text COLLATE "C" NOT NULL CHECK (tenant <> ''),
    id         text COLLATE "C" NOT NULL,
    agent      text COLLATE "C" NOT NULL,
    created_at timestamptz NOT NULL,
    metadata   json NOT NULL,
    -- The sequence number of the last message; appends lock this row and advance it.
    last_seq   bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    PRIMARY KEY (tenant, id)
);

CREATE TABLE messages (
    tenant     text COLLATE "C" NOT NULL,
    session_id text COLLATE "C" NOT NULL,
    seq        bigint NOT NULL CHECK (seq > 0),
    run_id     text COLLATE "C",
    message    json NOT NULL,
    created_at timestamptz NOT NULL,
    -- Serves `All`/`After(seq)` (forward scan) and `Last(n)` (backward scan:
    -- `ORDER BY seq DESC LIMIT n` reads exactly n index entries; a separate
    -- `(tenant, session_id, seq DESC)` index would be the same B-tree read the other way).
    PRIMARY KEY (tenant, session_id, seq),
    FOREIGN KEY (tenant, session_id) REFERENCES sessions (tenant, id)
);

CREATE TABLE agent_configs (
    tenant     text COLLATE "C" NOT NULL CHECK (tenant <> ''),
    agent      text COLLATE "C" NOT NULL,
    version    bigint NOT NULL CHECK (version >= 0),
    status     text NOT NULL CHECK (status IN ('draft', 'final')),
    config     json NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, agent, version)
);

CREATE TABLE runs (
    tenant            text COLLATE "C" NOT NULL CHECK (tenant <> ''),
    id                text COLLATE "C" NOT NULL,
    agent             text COLLATE "C" NOT NULL,
    session_id        text COLLATE "C" NOT NULL,
    status            text NOT NULL CHECK (status IN ('running', 'suspended', 'completed', 'failed')),
    -- Compare-and-swap: `UPDATE ... WHERE version = $expected`.
    version           bigint NOT NULL,
    turns             bigint NOT NULL,
    tool_calls        bigint NOT NULL,
    tool_errors       bigint NOT NULL,
    usage             json NOT NULL,
    pending           json NOT NULL,
    call_fingerprints json NOT NULL,
    reply             text,
    error             text,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    PRIMARY KEY (tenant, id)
);

CREATE TABLE approvals (
    tenant           text COLLATE "C" NOT NULL CHECK (tenant <> ''),
    id               text COLLATE "C" NOT NULL,
    agent            text COLLATE "C" NOT NULL,
    session_id       text COLLATE "C" NOT NULL,
    run_id           text COLLATE "C" NOT NULL,
    call             json NOT NULL,
    arguments_hash   text NOT NULL,
    reason           text NOT NULL,
    priority         text NOT NULL CHECK (priority IN ('low', 'medium', 'high', 'critical')),
    priority_rank    smallint GENERATED ALWAYS AS (
                         CASE priority
                             WHEN 'low' THEN 0
                             WHEN 'medium' THEN 1
                             WHEN 'high' THEN 2
                             ELSE 3
                         END
                     ) STORED,
    status           text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    assignee         text,
    deadline         timestamptz,
    created_at       timestamptz NOT NULL,
    decided_at       timestamptz,
    reviewer         text,
    comment          text,
    edited_arguments json,
    PRIMARY KEY (tenant, id)
);

-- The review queue, in `approval_queue_order`: only pending requests are indexed.
CREATE INDEX approvals_pending_queue
    ON approvals (tenant, priority_rank DESC, deadline ASC NULLS LAST, created_at, id)
    WHERE status = 'pending';

CREATE TABLE tool_executions (
    tenant          text COLLATE "C" NOT NULL CHECK (tenant <> ''),
    idempotency_key text COLLATE "C" NOT NULL,
    -- Order of first recording (kept by updates of the same run).
    first_recorded  bigserial NOT NULL,
    agent           text COLLATE "C" NOT NULL,
    session_id      text COLLATE "C" NOT NULL,
    run_id          text COLLATE "C" NOT NULL,
    call_id         text NOT NULL,
    tool            text NOT NULL,
    input           json NOT NULL,
    output          json,
    error           text,
    status          text NOT NULL CHECK (status IN ('started', 'succeeded', 'failed')),
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    PRIMARY KEY (tenant, idempotency_key)
);

CREATE INDEX tool_executions_by_run ON tool_executions (tenant, run_id, first_recorded);

CREATE TABLE usage_events (
    tenant        text COLLATE "C" NOT NULL CHECK (tenant <> ''),
    id            text COLLATE "C" NOT NULL,
    -- Insertion order, for events with the same time.
    pos           bigserial NOT NULL,
    agent         text COLLATE "C" NOT NULL,
    session_id    text COLLATE "C",
    run_id        text COLLATE "C",
    kind          text NOT NULL CHECK (kind IN ('input_tokens', 'output_tokens', 'cached_input_tokens',
                                                'tool_call', 'knowledge_query', 'audio_millis')),
    resource      text,
    quantity      bigint NOT NULL CHECK (quantity >= 0),
    cost_nanos    bigint,
    price_version text,
    at            timestamptz NOT NULL,
    PRIMARY KEY (tenant, id)
);

CREATE INDEX usage_by_time ON usage_events (tenant, at, pos);
CREATE INDEX usage_by_agent ON usage_events (tenant, agent, at);
CREATE INDEX usage_by_run ON usage_events (tenant, run_id, at) WHERE run_id IS NOT NULL;

CREATE TABLE audit_entries (
    tenant     text COLLATE "C" NOT NULL CHECK (tenant <> ''),
    seq        bigint NOT NULL CHECK (seq > 0),
    kind       text NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    decision   text,
    reason     text,
    agent      text COLLATE "C",
    session_id text COLLATE "C",
    run_id     text COLLATE "C",
    input      json NOT NULL,
    output     json NOT NULL,
    at         timestamptz NOT NULL,
    prev_hash  text NOT NULL,
    hash       text NOT NULL,
    -- One chain per tenant: the head is the highest seq (a backward scan of this key).
    PRIMARY KEY (tenant, seq)
);

CREATE INDEX audit_by_time ON audit_entries (tenant, at);
CREATE INDEX audit_by_kind ON audit_entries (tenant, kind, seq);
CREATE INDEX audit_by_run ON audit_entries (tenant, run_id, seq) WHERE run_id IS NOT NULL;
CREATE INDEX audit_by_agent ON audit_entries (tenant, agent, seq) WHERE agent IS NOT NULL;

CREATE TABLE counters (
    tenant     text COLLATE "C" NOT NULL CHECK (tenant <> ''),
    key        text COLLATE "C" NOT NULL,
    value      bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, key)
);

CREATE TABLE memories (
    tenant     text COLLATE "C" NOT NULL CHECK (tenant <> ''),
    -- `MemoryScope::storage_key()`: `tenant`, `agent:<id>`, `entity:<id>`.
    scope      text COLLATE "C" NOT NULL,
    key        text COLLATE "C" NOT NULL,
    value      json NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, scope, key)
);

-- Append-only tables ---------------------------------------------------------------------------

CREATE FUNCTION agentkit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'agentkit: % is append-only; % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER usage_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON usage_events
    FOR EACH STATEMENT EXECUTE FUNCTION agentkit_refuse_change();
CREATE TRIGGER audit_entries_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION agentkit_refuse_change();

REVOKE UPDATE, DELETE, TRUNCATE ON usage_events, audit_entries FROM PUBLIC;
-- Also from the role running the migrations (the tables' owner; when that is the application
-- role, it keeps only SELECT and INSERT here).
REVOKE UPDATE, DELETE, TRUNCATE ON usage_events, audit_entries FROM CURRENT_USER;

-- Row-level security ---------------------------------------------------------------------------
--
-- FORCE applies the policies to the tables' owner too. Superusers and roles with BYPASSRLS are
-- never subject to row-level security: the application must connect as a role that is neither.
-- `current_setting(.., true)` is NULL when the setting is missing, and NULL matches no row.

ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sessions
    USING (tenant = current_setting('agentkit.tenant', true))
    WITH CHECK (tenant = current_setting('agentkit.tenant', true));

ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON messages
    USING (tenant = current_setting('agentkit.tenant', true))
    WITH CHECK (tenant = current_setting('agentkit.tenant', true));

ALTER TABLE agent_configs ENABLE ROW LEVEL SECURITY;
ALTER TABLE agent_configs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON agent_configs
    USING (tenant = current_setting('agentkit.tenant', true))
    WITH CHECK (tenant = current_setting('agentkit.tenant', true));

ALTER TABLE runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE runs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON runs
    USING (tenant = current_setting('agentkit.tenant', true))
    WITH CHECK (tenant = current_setting('agentkit.tenant', true));

ALTER TABLE approvals ENABLE ROW LEVEL SECURITY;
ALTER TABLE approvals FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON approvals
    USING (tenant = current_setting('agentkit.tenant', true))
    WITH CHECK (tenant = current_setting('agentkit.tenant', true));

ALTER TABLE tool_executions ENABLE ROW LEVEL SECURITY;
ALTER TABLE tool_executions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tool_executions
    USING (tenant = current_setting('agentkit.tenant', true))
    WITH CHECK (tenant = current_setting('agentkit.tenant', true));

ALTER TABLE usage_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON usage_events
    USING (tenant = current_setting('agentkit.tenant', true))
    WITH CHECK (tenant = current_setting('agentkit.tenant', true));

ALTER TABLE audit_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_entries
    USING (tenant = current_setting('agentkit.tenant', true))
    WITH CHECK (tenant = current_setting('agentkit.tenant', true));

ALTER TABLE counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE counters FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON counters
    USING (tenant = current_setting('agentkit.tenant', true))
    WITH CHECK (tenant = current_setting('agentkit.tenant', true));

ALTER TABLE memories ENABLE ROW LEVEL SECURITY;
ALTER TABLE memories FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON memories
    USING (tenant = current_setting('agentkit.tenant', true))
    WITH CHECK (tenant = current_setting('agentkit.tenant', true));
