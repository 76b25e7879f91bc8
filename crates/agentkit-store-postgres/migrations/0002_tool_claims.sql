-- Idempotency claims: the hash of the unredacted arguments a key was claimed for, and the
-- attempt number (a failed execution claimed again counts up).
ALTER TABLE tool_executions
    ADD COLUMN arguments_hash text NOT NULL DEFAULT '',
    ADD COLUMN attempt integer NOT NULL DEFAULT 1 CHECK (attempt >= 1);
