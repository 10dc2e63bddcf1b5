-- Whether an image may be served without a signature, through its owner's public presets
-- (`/i/{id}/p_NAME`). Images are private until their owner publishes them.
ALTER TABLE images ADD COLUMN public BOOLEAN NOT NULL DEFAULT FALSE;
