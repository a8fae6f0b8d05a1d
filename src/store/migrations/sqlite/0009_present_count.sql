-- Schema version 9 (both backends; 8 was PostgreSQL's own): how many of each scan's findings
-- are present (in any state but `fixed`), and how many of them each run listed.
--
-- Why: a complete run that listed every present finding of its scan has nothing to fix, and
-- its end then skips the pass over the scan's rows that looks for absent ones (a tenth of a
-- re-sync; BENCHMARKS.md, session 10). `scans.present_count` is kept by the store's writes:
-- a page adds the rows it created present and the fixed rows it brought back and takes the
-- rows it fixed; the pass sets it to what it counted, less what it fixed; a prune of a
-- branch scope takes the present rows it deletes. `present_checked_at` says when it was last
-- exact (the scan's creation, or a pass): older than a day, the pass runs anyway, so a count
-- that rows written behind the store's back made wrong (by hand, or by a node still on an
-- older scansync) holds up a fix for a day at most. `sync_runs.listed_present`: the rows the
-- run listed and left present (a run changes a row at most once).
ALTER TABLE scans ADD COLUMN present_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE scans ADD COLUMN present_checked_at TEXT;
ALTER TABLE sync_runs ADD COLUMN listed_present INTEGER NOT NULL DEFAULT 0;
UPDATE scans SET
    present_count = (SELECT count(*) FROM findings
                     WHERE findings.scan_id = scans.id AND findings.state <> 'fixed'),
    present_checked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now');
