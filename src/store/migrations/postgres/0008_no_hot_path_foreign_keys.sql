-- scansync store on PostgreSQL, schema version 8: the page import's foreign keys go, and
-- `findings` keeps room on its pages for the next sighting of each row. PostgreSQL only:
-- SQLite stays at version 7 (the next migration of both backends is 9).
--
-- Why: PostgreSQL checks a foreign key with a query of its own per row written (per row
-- updated too when the key changes, as `last_run_id` does on every sighting): a third of
-- the server's time on an import (BENCHMARKS.md, PostgreSQL). The store writes these rows
-- only in the transaction that holds their parents (the scan and run rows exist before any
-- page, events are written after their finding), deletes a scan's findings and events
-- before the scan (`store prune`), and a finding's events with it; the store's tests check
-- on both backends that no row names a missing parent. The other foreign keys stay: they
-- are on rows written once per run or less.
ALTER TABLE findings
    DROP CONSTRAINT findings_scan_id_fkey,
    DROP CONSTRAINT findings_last_run_id_fkey;
ALTER TABLE finding_events
    DROP CONSTRAINT finding_events_finding_id_fkey,
    DROP CONSTRAINT finding_events_run_id_fkey;

-- Each run rewrites every row it sees (last_seen, times_seen, the run): with room on the
-- row's page the new version goes there and no index changes (a heap-only update), which
-- is most of a re-sync's cost otherwise. Applies to pages written from now on.
ALTER TABLE findings SET (fillfactor = 50);
