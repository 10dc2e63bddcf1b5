-- Named ops an owner reuses as `p_NAME`; public ones need no signature on the owner's images.
CREATE TABLE presets (
    owner_id   TEXT        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT        COLLATE "C" NOT NULL,              -- [a-z0-9_-]{1,32}
    ops        TEXT        NOT NULL,                          -- canonical form
    public     BOOLEAN     NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (owner_id, name)
);
