-- sqlite3: a large in-memory database, indexed and aggregated.
PRAGMA cache_size = -200000;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 400000)
INSERT INTO t SELECT x, (x * 7919) % 100003, printf('%08d-%s', x, substr(hex(x * 2654435761), 1, 12)) FROM c;
CREATE INDEX tk ON t(k);
SELECT count(*), sum(k), max(v), min(v) FROM t;
SELECT k, count(*), group_concat(id, ',') FROM t WHERE k < 40 GROUP BY k ORDER BY k;
SELECT sum(length(v)) FROM t WHERE k BETWEEN 5000 AND 60000;
