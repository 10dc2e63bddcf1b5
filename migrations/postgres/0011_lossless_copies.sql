-- Lossless and transparent stills (PNG; WebP, AVIF, JPEG XL and HEIC with alpha or lossless)
-- now get working copies too, as PNG, from 0.5 MP on. Rows of such originals that recorded none
-- forget that, so the start-up backfill inspects them again and makes the copies where the
-- rule gives some (it records 0 again where it does not: an animation, a lossy opaque WebP
-- under 1.5 MP).
UPDATE images SET levels = NULL
WHERE levels = 0 AND format NOT IN ('jpeg', 'gif') AND CAST(width AS BIGINT) * height >= 500000;
