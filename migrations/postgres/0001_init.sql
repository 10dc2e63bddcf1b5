-- Owners, their signing keys and their daily transform quota.
CREATE TABLE users (
    id              TEXT        PRIMARY KEY,                  -- UUID v4
    username        TEXT        NOT NULL,
    password_hash   TEXT        NOT NULL,                     -- argon2id PHC string
    plan            TEXT        NOT NULL DEFAULT 'free',
    signing_key     BYTEA       NOT NULL CHECK (octet_length(signing_key) = 32),
    transform_count INTEGER     NOT NULL DEFAULT 0 CHECK (transform_count >= 0),
    transform_date  DATE,                                     -- UTC date of the count
    created_at      TIMESTAMPTZ NOT NULL
);

-- Usernames are unique regardless of case.
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

-- Uploaded originals. Variants live only in the object store and caches.
CREATE TABLE images (
    id           TEXT        PRIMARY KEY,                     -- 22 base64url chars
    owner_id     TEXT        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    format       TEXT        NOT NULL,                        -- jpeg | png | webp | gif | avif
    width        INTEGER     NOT NULL CHECK (width > 0),      -- after EXIF orientation
    height       INTEGER     NOT NULL CHECK (height > 0),
    size_bytes   BIGINT      NOT NULL CHECK (size_bytes > 0),
    content_hash TEXT        NOT NULL,                        -- blake3 hex of the original
    has_alpha    BOOLEAN     NOT NULL,                        -- decides fmt_auto without decoding
    created_at   TIMESTAMPTZ NOT NULL
);

-- Newest-first cursor pages of one owner's images.
CREATE INDEX images_owner_created ON images (owner_id, created_at DESC, id DESC);
