-- How many times the owner purged the image's variants (DELETE /v1/images/{id}/variants): part
-- of every variant key, so a purge makes every replica's cached variants unreachable at once.
ALTER TABLE images ADD COLUMN purges INTEGER NOT NULL DEFAULT 0;
