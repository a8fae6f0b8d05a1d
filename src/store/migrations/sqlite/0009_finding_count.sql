-- Schema version 9 (both backends; 8 was PostgreSQL's own): each scan keeps the number of
-- its findings rows beside it, written in the transaction that inserts or deletes them (the
-- page import, `store prune`, `store copy`).
--
-- Why: a complete run that listed every row of its scan (its `seen`, each row counted once
-- per run) leaves nothing to fix, and `finish_run` then skips its pass over the scan's rows,
-- a tenth of a re-sync (BENCHMARKS.md, session 10). The count must never be lower than the
-- rows: the pass corrects it whenever it runs, and the store's tests check it after each test.
ALTER TABLE scans ADD COLUMN finding_count INTEGER NOT NULL DEFAULT 0;
UPDATE scans SET finding_count = (SELECT count(*) FROM findings WHERE findings.scan_id = scans.id);
