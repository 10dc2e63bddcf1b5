-- Nothing to add: a SQLite file has one server process, whose in-process single flight already
-- makes each variant once. (PostgreSQL's 0009 adds the claims that replicas share.)
SELECT 1;
