-- The workflow store (agentkit-workflow): definitions, runs, step logs, events.
--
-- A run row keeps the whole run as JSON (`body`, text-exact) plus what claims, deliveries and
-- queries look up: `due_at` (when the run becomes claimable; NULL: only a resume or an event
-- wakes it; never before a live lease expires), `event_key` (set while it waits for an event).
-- Workers claim with `FOR UPDATE SKIP LOCKED` across tenants: the claim transaction sets
-- `agentkit.workflow_claim = 'on'`, which the runs' policy admits besides the tenant setting.

CREATE TABLE workflow_definitions (
    tenant   text COLLATE "C" NOT NULL CHECK (tenant <> ''),
    id       text COLLATE "C" NOT NULL,
    version  bigint NOT NULL,
    body     json NOT NULL,
    PRIMARY KEY (tenant, id, version)
);

CREATE TABLE workflow_runs (
    tenant       text COLLATE "C" NOT NULL CHECK (tenant <> ''),
    id           text COLLATE "C" NOT NULL,
    workflow     text COLLATE "C" NOT NULL,
    state        text NOT NULL,
    version      bigint NOT NULL,
    due_at       timestamptz,
    wake_at      timestamptz,
    event_key    text COLLATE "C",
    trigger_key  text COLLATE "C",
    created_at   timestamptz NOT NULL,
    body         json NOT NULL,
    PRIMARY KEY (tenant, id)
);

CREATE UNIQUE INDEX workflow_runs_by_trigger ON workflow_runs (tenant, workflow, trigger_key)
    WHERE trigger_key IS NOT NULL;
CREATE INDEX workflow_runs_due ON workflow_runs (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX workflow_runs_waiting ON workflow_runs (tenant, event_key) WHERE event_key IS NOT NULL;
CREATE INDEX workflow_runs_by_time ON workflow_runs (tenant, created_at, id);

CREATE TABLE workflow_steps (
    tenant  text COLLATE "C" NOT NULL,
    run     text COLLATE "C" NOT NULL,
    seq     bigint NOT NULL,
    body    json NOT NULL,
    PRIMARY KEY (tenant, run, seq),
    FOREIGN KEY (tenant, run) REFERENCES workflow_runs (tenant, id)
);

CREATE TABLE workflow_events (
    tenant     text COLLATE "C" NOT NULL,
    id         text COLLATE "C" NOT NULL,
    event_key  text COLLATE "C" NOT NULL,
    body       json NOT NULL,
    at         timestamptz NOT NULL,
    consumed   boolean NOT NULL,
    PRIMARY KEY (tenant, id)
);

CREATE INDEX workflow_events_kept ON workflow_events (tenant, event_key, at) WHERE NOT consumed;

CREATE FUNCTION agentkit_workflow_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'agentkit: % rows are immutable', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER workflow_definitions_immutable BEFORE UPDATE OR DELETE ON workflow_definitions
    FOR EACH ROW EXECUTE FUNCTION agentkit_workflow_immutable();
CREATE TRIGGER workflow_steps_append_only BEFORE UPDATE OR DELETE ON workflow_steps
    FOR EACH ROW EXECUTE FUNCTION agentkit_workflow_immutable();

ALTER TABLE workflow_definitions ENABLE ROW LEVEL SECURITY;
ALTER TABLE workflow_definitions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON workflow_definitions
    USING (tenant = current_setting('agentkit.tenant', true))
    WITH CHECK (tenant = current_setting('agentkit.tenant', true));

ALTER TABLE workflow_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE workflow_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON workflow_runs
    USING (tenant = current_setting('agentkit.tenant', true)
           OR current_setting('agentkit.workflow_claim', true) = 'on')
    WITH CHECK (tenant = current_setting('agentkit.tenant', true)
           OR current_setting('agentkit.workflow_claim', true) = 'on');

ALTER TABLE workflow_steps ENABLE ROW LEVEL SECURITY;
ALTER TABLE workflow_steps FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON workflow_steps
    USING (tenant = current_setting('agentkit.tenant', true))
    WITH CHECK (tenant = current_setting('agentkit.tenant', true));

ALTER TABLE workflow_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE workflow_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON workflow_events
    USING (tenant = current_setting('agentkit.tenant', true))
    WITH CHECK (tenant = current_setting('agentkit.tenant', true));
