-- Owners, their signing keys and their daily transform quota.
CREATE TABLE users (
    id              TEXT    PRIMARY KEY,                      -- UUID v4
    username        TEXT    NOT NULL COLLATE NOCASE UNIQUE,   -- unique regardless of case
    password_hash   TEXT    NOT NULL,                         -- argon2id PHC string
    plan            TEXT    NOT NULL DEFAULT 'free',
    signing_key     BLOB    NOT NULL,                         -- 32 random bytes, HMAC key of /i URLs
    transform_count INTEGER NOT NULL DEFAULT 0,               -- transforms charged on transform_date
    transform_date  TEXT,                                     -- UTC date YYYY-MM-DD of the count
    created_at      INTEGER NOT NULL                          -- unix microseconds
);

-- Uploaded originals. Variants live only in the object store and caches.
CREATE TABLE images (
    id           TEXT    PRIMARY KEY,                         -- 22 base64url chars
    owner_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    format       TEXT    NOT NULL,                            -- jpeg | png | webp | gif | avif
    width        INTEGER NOT NULL,                            -- after EXIF orientation
    height       INTEGER NOT NULL,
    size_bytes   INTEGER NOT NULL,
    content_hash TEXT    NOT NULL,                            -- blake3 hex of the original
    has_alpha    INTEGER NOT NULL,                            -- 0 or 1; decides fmt_auto without decoding
    created_at   INTEGER NOT NULL                             -- unix microseconds
);

-- Newest-first cursor pages of one owner's images.
CREATE INDEX images_owner_created ON images (owner_id, created_at DESC, id DESC);
