-- Whether an image may be served without a signature, through its owner's public presets
-- (`/i/{id}/p_NAME`). Images are private until their owner publishes them.
ALTER TABLE images ADD COLUMN public INTEGER NOT NULL DEFAULT 0;  -- 0 or 1
