-- Named ops an owner reuses as `p_NAME`; public ones need no signature on the owner's images.
CREATE TABLE presets (
    owner_id   TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,                              -- [a-z0-9_-]{1,32}
    ops        TEXT    NOT NULL,                              -- canonical form
    public     INTEGER NOT NULL,                              -- 0 or 1
    updated_at INTEGER NOT NULL,                              -- unix microseconds
    PRIMARY KEY (owner_id, name)
);
