-- Placeholders of each image, computed at upload: ThumbHash (base64), BlurHash 4x3, average
-- colour "#rrggbb". NULL only for rows uploaded before this version, until the server's
-- start-up backfill computes them from the original.
ALTER TABLE images ADD COLUMN thumbhash TEXT;
ALTER TABLE images ADD COLUMN blurhash TEXT;
ALTER TABLE images ADD COLUMN color TEXT;
