-- What an image holds in the object store besides its original: the bytes of its working
-- copies, so an owner's storage counts them. Rows with no copies hold none; rows with copies
-- from before this version are NULL until the start-up backfill sizes their copies.
ALTER TABLE images ADD COLUMN copies_bytes BIGINT CHECK (copies_bytes >= 0);
UPDATE images SET copies_bytes = 0 WHERE levels = 0;
