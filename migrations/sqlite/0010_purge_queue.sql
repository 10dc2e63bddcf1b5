-- Purges waiting to reach PURGE_WEBHOOK_URL: written by the change that makes them, deleted once
-- the webhook took them, so none is lost when the server restarts. Times are Unix milliseconds.
CREATE TABLE purge_queue (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tags            TEXT    NOT NULL,
    created_ms      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL
);
CREATE INDEX purge_queue_next_attempt ON purge_queue (next_attempt_ms);
