-- Retracted messages: a failed run's messages stay stored, but no window returns them.
ALTER TABLE messages ADD COLUMN retracted boolean NOT NULL DEFAULT false;
