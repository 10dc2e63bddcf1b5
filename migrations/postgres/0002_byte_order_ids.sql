-- Image ids compare byte by byte whatever the cluster's locale, as SQLite compares them, so
-- newest-first pages break ties in created_at the same way on every database.
ALTER TABLE images ALTER COLUMN id TYPE TEXT COLLATE "C";
