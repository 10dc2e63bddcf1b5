-- Working copies of large JPEG originals (the original at 1/2 and 1/4, beside it in the store):
-- a bitmask with bit f set for the copy at 1/f; 0 when the image gets none. NULL only for rows
-- from before this version, until the start-up backfill makes their copies.
ALTER TABLE images ADD COLUMN levels INTEGER;
