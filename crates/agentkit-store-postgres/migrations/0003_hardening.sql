-- Retracted messages: a failed run's messages stay stored, but no window returns them.
ALTER TABLE messages ADD COLUMN retracted boolean NOT NULL DEFAULT false;

-- An approval decided by the system (expiry), not by a person.
ALTER TABLE approvals ADD COLUMN decided_automatically boolean NOT NULL DEFAULT false;

-- One rule on every backend: a run belongs to an existing session, an approval to an existing
-- run (NOT VALID: rows written before this migration are not re-checked).
ALTER TABLE runs
    ADD CONSTRAINT runs_session_fk FOREIGN KEY (tenant, session_id)
    REFERENCES sessions (tenant, id) NOT VALID;
ALTER TABLE approvals
    ADD CONSTRAINT approvals_run_fk FOREIGN KEY (tenant, run_id)
    REFERENCES runs (tenant, id) NOT VALID;
