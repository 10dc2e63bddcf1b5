-- Purges waiting to reach PURGE_WEBHOOK_URL: written by the change that makes them, deleted once
-- the webhook took them, so none is lost when a replica restarts. Times are Unix milliseconds.
CREATE TABLE purge_queue (
    id              BIGSERIAL PRIMARY KEY,
    tags            TEXT    NOT NULL,
    created_ms      BIGINT  NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT  NOT NULL
);
CREATE INDEX purge_queue_next_attempt ON purge_queue (next_attempt_ms);
