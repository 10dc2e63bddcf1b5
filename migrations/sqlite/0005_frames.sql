-- Frames of each image: 1 for a still, N for an animated GIF or WebP, counted at upload. NULL
-- only for GIF and WebP rows uploaded before this version, until the server's start-up backfill
-- counts them from the original (JPEG and PNG are always one frame).
ALTER TABLE images ADD COLUMN frames INTEGER;
UPDATE images SET frames = 1 WHERE format NOT IN ('gif', 'webp');
