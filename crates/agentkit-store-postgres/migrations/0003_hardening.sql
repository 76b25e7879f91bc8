-- Retracted messages: a failed run's messages stay stored, but no window returns them.
ALTER TABLE messages ADD COLUMN retracted boolean NOT NULL DEFAULT false;

-- An approval decided by the system (expiry), not by a person.
ALTER TABLE approvals ADD COLUMN decided_automatically boolean NOT NULL DEFAULT false;
