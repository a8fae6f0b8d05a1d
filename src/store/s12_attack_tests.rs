//! Attacks on the s12 change (a run that a newer run of its scan overtook fixes nothing at
//! its end; first read from the rows a newer run touched, now `RunContext::overtaken_by`). The promise under attack: a finding is `fixed` only
//! when a complete vendor listing, confirmed, no longer has it; no false `fixed` (or
//! `missing`) reaches the store or a webhook, even for a while. Around it: two findings of
//! one identity told apart by their order (`Finding::fingerprint`, `same_sighting`, the walk
//! in `upsert_finding` and `plan_page`), runs of one scan overlapping through adoption and
//! kills, the vendor's "resolved" word, and the notifications built from a run's events.
//! Each test runs on both backends (`SCANSYNC_TEST_STORE=postgres`).
//!
//! A test whose doc comment starts "Was a BREAK" failed when it was written and says what
//! broke (mended in the same session); the others pinned behaviour that held.

use super::ingest::ONE_BY_ONE;
use super::test_db::on_postgres;
use super::tests::{at, finding, findings, import, other_process, scope, temp_store};
use super::*;
use crate::config::{EventType, Route};
use crate::finding::Verdict;

/// `f` with the vendor's "resolved" word.
pub(super) fn resolved_f(mut f: Finding) -> Finding {
    f.vendor_status = Some("Resolved".into());
    f.verdict = Some(Verdict::Resolved);
    f
}

/// Finding `n`, resolved at the vendor.
fn resolved(n: usize) -> Finding {
    resolved_f(finding(n))
}

/// An API posture gap (Salt-like: no lines) of one identity, with vendor id `vid`.
fn gap(vid: Option<&str>) -> Finding {
    let mut f = finding(1);
    f.location = Location::Api {
        method: "GET".into(),
        path: "/v1/users/{id}".into(),
        host: "api.example.com".into(),
    };
    f.vendor_id = vid.map(Into::into);
    f
}

/// A run begun by `store`, given `pages`, then left running (its process stops while the
/// vendor scan goes on: detached, owner gone), for another process to adopt.
pub(super) fn left_running(store: &mut Store, scan: &str, pages: &[Vec<Finding>]) -> RunId {
    let run = store.begin_run(&scope(scan)).unwrap();
    store.set_vendor_scan_id(run, &format!("vs-{run}")).unwrap();
    for page in pages {
        store.upsert_page(run, page).unwrap();
    }
    store.detach_run(run).unwrap();
    store.release_owner().unwrap();
    run
}

/// Adopts `run` in `store` and gives it `pages`.
fn adopt(store: &mut Store, run: RunId, pages: &[Vec<Finding>]) {
    store.adopt_run(run).unwrap().unwrap().unwrap();
    for page in pages {
        store.upsert_page(run, page).unwrap();
    }
}

/// `(seen, new, reopened, fixed, missing)` of a run.
pub(super) fn tally(run: &RunRow) -> (u64, u64, u64, u64, u64) {
    let c = &run.counts;
    (c.seen, c.new, c.reopened, c.fixed, c.missing)
}

/// The lifecycle events of run `run` (`reopened`, `fixed`, `missing`, and `created` ones
/// that were not `new`), as `(vendor id of the row, kind)`, in event order.
pub(super) fn changes(store: &Store, run: RunId) -> Vec<(String, String)> {
    let mut stmt = store
        .conn
        .prepare(
            "SELECT coalesce(f.vendor_id, f.title), e.kind FROM finding_events e
             JOIN findings f ON f.id = e.finding_id
             WHERE e.run_id = ?1
               AND e.kind IN ('reopened', 'returned', 'fixed', 'missing')
             ORDER BY e.id",
        )
        .unwrap();
    stmt.query_map(params![run], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The states of the rows of scan "shop" whose vendor id is `vid`, in id order.
pub(super) fn states_of_vid(store: &Store, vid: &str) -> Vec<String> {
    let mut stmt = store
        .conn
        .prepare(
            "SELECT f.state FROM findings f JOIN scans s ON s.id = f.scan_id
             WHERE s.name = 'shop' AND f.vendor_id = ?1 ORDER BY f.id",
        )
        .unwrap();
    stmt.query_map(params![vid], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The state of the row of "shop" stored under `fingerprint`.
pub(super) fn state_of(store: &Store, fingerprint: &str) -> String {
    store
        .conn
        .query_row(
            "SELECT f.state FROM findings f JOIN scans s ON s.id = f.scan_id
             WHERE s.name = 'shop' AND f.fingerprint = ?1",
            params![fingerprint],
            |r| r.get(0),
        )
        .unwrap()
}

/// Every `fixed` or `missing` event of scan "shop" so far: `(run, fingerprint, kind)`.
pub(super) fn absences(store: &Store) -> Vec<(RunId, String, String)> {
    let mut stmt = store
        .conn
        .prepare(
            "SELECT e.run_id, f.fingerprint, e.kind FROM finding_events e
             JOIN findings f ON f.id = e.finding_id JOIN scans s ON s.id = f.scan_id
             WHERE s.name = 'shop'
               AND (e.kind IN ('fixed', 'missing')
                    OR (e.kind = 'created' AND e.new_value IN ('fixed', 'missing')))
             ORDER BY e.id",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A webhook route for every finding event of every scan.
pub(super) fn changes_route() -> Route {
    Route {
        name: "changes".into(),
        events: vec![
            EventType::FindingsNew,
            EventType::FindingsFixed,
            EventType::FindingsReopened,
        ],
        min_severity: None,
        scans: Vec::new(),
    }
}

/// Every outbox row as `(event type, run id, fingerprints)`, oldest first.
pub(super) fn announced(store: &Store) -> Vec<(String, i64, Vec<String>)> {
    let mut stmt = store
        .conn
        .prepare("SELECT event_type, payload FROM webhook_outbox ORDER BY id")
        .unwrap();
    let rows: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.into_iter()
        .map(|(kind, payload)| {
            let p: serde_json::Value = serde_json::from_str(&payload).unwrap();
            let mut fps: Vec<String> = p["data"]["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["fingerprint"].as_str().unwrap().to_string())
                .collect();
            fps.sort();
            (kind, p["data"]["run_id"].as_i64().unwrap(), fps)
        })
        .collect()
}

/// The last announcement about `fingerprint`: its event type, or `None`.
fn last_word(store: &Store, fingerprint: &str) -> Option<String> {
    announced(store)
        .into_iter()
        .rev()
        .find(|(_, _, fps)| fps.iter().any(|f| f == fingerprint))
        .map(|(kind, _, _)| kind)
}

/// Runs `test` once importing pages the usual way and, on PostgreSQL, once more one
/// finding at a time (the batched `plan_page` path and `upsert_finding` must agree).
pub(super) fn both_paths(test: impl Fn(bool)) {
    let paths: &[bool] = if on_postgres() {
        &[false, true]
    } else {
        &[false]
    };
    for &one_by_one in paths {
        ONE_BY_ONE.with(|o| o.set(one_by_one));
        test(one_by_one);
    }
    ONE_BY_ONE.with(|o| o.set(false));
}

// ---- (1) The identity walk of the newest run ----

/// Was a BREAK, mended in session 12 (both backends). No overlap, no adoption: the newest run of the scan, alone.
/// Two findings A and B of one identity (rule, file, title; vendor ids `v-a`, `v-b`) are
/// rows #0 and #1. The vendor then calls A resolved and lists it first: #0 is `fixed` (A),
/// #1 stays open (B). In the next scan nothing changes at the vendor (A still resolved, B
/// still open) but it lists B first. The walk puts B on the lowest free row, #0 (A's, fixed):
/// `reopened`; A's resolved word then lands on #1 (B's row, open): `fixed`. One false
/// `reopened` and one `fixed` event for a listing that changed nothing but its order, both
/// counted by the run and announced (`findings.fixed` lists the row that held B).
#[test]
fn the_newest_run_listing_one_identity_in_another_order_neither_reopens_nor_fixes() {
    both_paths(|one_by_one| {
        let (_db, mut store) = temp_store();
        store.set_webhook_routes(vec![changes_route()], crate::webhooks::payload::body);
        let (a, b) = (at(1, 10, Some("v-a")), at(1, 40, Some("v-b")));
        let others = findings(2..8);
        let listing = |first: &Finding, second: &Finding| {
            vec![[vec![first.clone(), second.clone()], others.clone()].concat()]
        };
        import(&mut store, "shop", &listing(&a, &b), RunEnd::Succeeded);
        let a_resolved = resolved_f(a.clone());
        let run = import(
            &mut store,
            "shop",
            &listing(&a_resolved, &b),
            RunEnd::Succeeded,
        );
        assert_eq!(tally(&run), (8, 0, 0, 1, 0), "A resolved at the vendor");
        assert_eq!(states_of_vid(&store, "v-b"), ["open"]);
        let before = store
            .conn
            .query_row("SELECT count(*) FROM webhook_outbox", [], |r| {
                r.get::<i64>(0)
            });
        let before = before.unwrap();

        // The same vendor state, B listed first.
        let run = import(
            &mut store,
            "shop",
            &listing(&b, &a_resolved),
            RunEnd::Succeeded,
        );
        let after: i64 = store
            .conn
            .query_row("SELECT count(*) FROM webhook_outbox", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            (tally(&run), changes(&store, run.id), after - before),
            ((8, 0, 0, 0, 0), vec![], 0),
            "nothing changed at the vendor but the order of A and B (one by one: {one_by_one})"
        );
    });
}

/// Was a BREAK, mended in session 12 (both backends). The newest run, alone. A and B of one identity are rows #0 and
/// #1; the vendor resolves A (listed first): #0 `fixed`, #1 open. The next scan no longer
/// lists the resolved A, only B, still open. B's walk takes #0 (A's fixed row): `reopened`;
/// #1, B's own row, is unlisted and is fixed by the complete run's end (or held `missing`
/// when the scan is small: the guard sees every present row but the "reopened" one absent,
/// then the next run fixes it). B is announced fixed while the vendor lists it open, and A,
/// gone at the vendor, announced reopened. The counts are wrong too (one reopened, one
/// fixed, where nothing changed).
#[test]
fn the_newest_run_lacking_only_the_resolved_one_of_an_identity_fixes_nothing() {
    both_paths(|one_by_one| {
        let mut got = Vec::new();
        for others in [findings(2..8), vec![]] {
            let (_db, mut store) = temp_store();
            let (a, b) = (at(1, 10, Some("v-a")), at(1, 40, Some("v-b")));
            let page = |first: Finding, second: Option<Finding>| {
                let mut page = vec![first];
                page.extend(second);
                page.extend(others.iter().cloned());
                vec![page]
            };
            import(
                &mut store,
                "shop",
                &page(a.clone(), Some(b.clone())),
                RunEnd::Succeeded,
            );
            import(
                &mut store,
                "shop",
                &page(resolved_f(a.clone()), Some(b.clone())),
                RunEnd::Succeeded,
            );
            // A is gone from the listing (resolved long enough); B is still there.
            let run = import(
                &mut store,
                "shop",
                &page(b.clone(), None),
                RunEnd::Succeeded,
            );
            let next = import(
                &mut store,
                "shop",
                &page(b.clone(), None),
                RunEnd::Succeeded,
            );
            got.push((
                others.len(),
                tally(&run),
                changes(&store, run.id),
                changes(&store, next.id),
            ));
        }
        let seen = |n: u64| (n, 0, 0, 0, 0);
        assert_eq!(
            got,
            [(6, seen(7), vec![], vec![]), (0, seen(1), vec![], vec![])],
            "B is listed in every run (one by one: {one_by_one})"
        );
    });
}

/// Was a BREAK, mended in session 12 (both backends). The newest run, alone. Two posture gaps of one identity (same
/// check, same endpoint: API findings have no lines) are told apart only by their vendor
/// ids, which the docs call proposals (`Finding::fingerprint`): a listing where one of them
/// comes without its id (the vendor dropped the field for it) makes `same_sighting` compare
/// lines, `(None, None)` both: the second gap is taken for a repeat of the first and not
/// stored, and its row, unlisted, is fixed by the complete run's end although the vendor
/// lists it.
#[test]
fn two_sightings_told_apart_by_vendor_ids_stay_two_when_a_listing_lacks_one_id() {
    both_paths(|one_by_one| {
        let (_db, mut store) = temp_store();
        let others = findings(2..8);
        let first = import(
            &mut store,
            "shop",
            &[[vec![gap(Some("g-1")), gap(Some("g-2"))], others.clone()].concat()],
            RunEnd::Succeeded,
        );
        assert_eq!(tally(&first), (8, 8, 0, 0, 0), "two gaps, two rows");
        let run = import(
            &mut store,
            "shop",
            &[[vec![gap(Some("g-1")), gap(None)], others.clone()].concat()],
            RunEnd::Succeeded,
        );
        assert_eq!(
            (tally(&run), changes(&store, run.id)),
            ((8, 0, 0, 0, 0), vec![]),
            "the vendor listed both gaps (one by one: {one_by_one})"
        );
    });
}

/// Holds (both backends, both PostgreSQL paths). The newest run N is the one whose walk a
/// late older run cannot disturb: N stores a first page holding A (one of two findings of
/// one identity) and the first of another pair told apart by lines only, then its process
/// stops; an older run R is adopted and lists everything (it meets N's rows and stops, so
/// fixes nothing, by `RunContext::overtaken_by`); N is adopted in turn and lists the vendor scan
/// again from its start, the pairs in the other order and split over other pages, and
/// lacking finding 7. N fixes finding 7 only; nothing else is ever fixed or missing.
#[test]
fn the_newest_run_adopted_after_an_older_run_met_its_rows_fixes_only_what_it_lacks() {
    both_paths(|one_by_one| {
        let (db, mut first) = temp_store();
        let (a, b) = (at(1, 10, Some("v-a")), at(1, 40, Some("v-b")));
        let (c, d) = (at(3, 5, None), at(3, 9, None));
        let everything = [
            vec![a.clone(), finding(2), c.clone()],
            vec![b.clone(), d.clone(), finding(4)],
            findings(5..8),
        ];
        import(&mut first, "shop", &everything, RunEnd::Succeeded);
        let old = left_running(&mut first, "shop", &[]);
        let mut third = other_process(&db);
        let newer = left_running(
            &mut third,
            "shop",
            &[vec![a.clone(), c.clone(), finding(2)]],
        );
        let mut second = other_process(&db);
        adopt(&mut second, old, &everything);
        let end = second.finish_run(old, RunEnd::Succeeded).unwrap();
        assert_eq!((end.counts.fixed, end.counts.missing), (0, 0));
        // The vendor scan read again from its start: other pages, other order, no 7.
        adopt(
            &mut second,
            newer,
            &[
                vec![d.clone(), b.clone()],
                vec![finding(6), c.clone(), finding(2)],
                vec![finding(4), a.clone(), finding(5), b.clone()],
            ],
        );
        let end = second.finish_run(newer, RunEnd::Succeeded).unwrap();
        assert_eq!(end.state, RunState::Succeeded);
        assert_eq!(
            absences(&second),
            vec![(newer, finding(7).fingerprint(0), "fixed".to_string())],
            "one by one: {one_by_one}"
        );
        for f in [&a, &b, &c, &d] {
            for occurrence in 0..2 {
                assert_ne!(state_of(&second, &f.fingerprint(occurrence)), "fixed");
            }
        }
    });
}

/// Holds (both backends). An older run R stores both findings of one identity and a third,
/// new one (D) before a newer run N begins; R's process stops. N lists the vendor's newer
/// scan (A and B, no D): R's rows are older than N, so N's walk takes them as any earlier
/// run's, and N fixes the one row of the identity it lacks (D's, #2), which its listing no
/// longer has. R, adopted after N succeeded, fixes nothing and brings nothing back.
#[test]
fn an_older_run_that_stored_an_identity_before_the_newer_began_leaves_the_newer_a_clean_walk() {
    both_paths(|one_by_one| {
        let (db, mut first) = temp_store();
        let (a, b, extra) = (
            at(1, 10, Some("v-a")),
            at(1, 40, Some("v-b")),
            at(1, 70, Some("v-d")),
        );
        let others = findings(2..8);
        import(
            &mut first,
            "shop",
            &[[vec![a.clone(), b.clone()], others.clone()].concat()],
            RunEnd::Succeeded,
        );
        let old = left_running(
            &mut first,
            "shop",
            &[vec![a.clone(), b.clone(), extra.clone()]],
        );
        let mut second = other_process(&db);
        let newer = import(
            &mut second,
            "shop",
            &[[vec![b.clone(), a.clone()], others.clone()].concat()],
            RunEnd::Succeeded,
        );
        assert_eq!(tally(&newer), (8, 0, 0, 1, 0), "one by one: {one_by_one}");
        assert_eq!(state_of(&second, &a.fingerprint(2)), "fixed");
        adopt(
            &mut second,
            old,
            &[[vec![a.clone(), b.clone(), extra.clone()], others.clone()].concat()],
        );
        let end = second.finish_run(old, RunEnd::Succeeded).unwrap();
        assert_eq!((end.counts.fixed, end.counts.missing), (0, 0));
        assert_eq!(state_of(&second, &a.fingerprint(2)), "fixed");
        assert_eq!(absences(&second).len(), 1);
    });
}

// ---- (2) What `RunContext::overtaken_by` reads ----

/// Holds (both backends). A newer run of a branch scope (`shop@feature`, its own scan and
/// rows) that stored a page does not make the scan's older run fix nothing: `newer_run`
/// and `touched_run_id` are the scan's own. The older run, adopted, lacks finding 5: fixed.
#[test]
fn a_newer_run_of_a_branch_scope_leaves_the_scans_older_run_its_fixes() {
    let (db, mut first) = temp_store();
    import(&mut first, "shop", &[findings(0..8)], RunEnd::Succeeded);
    let old = left_running(&mut first, "shop", &[]);
    let mut third = other_process(&db);
    let branch = third.begin_run(&scope("shop@feature")).unwrap();
    third.upsert_page(branch, &findings(0..8)).unwrap();
    let mut second = other_process(&db);
    let mut listing = findings(0..5);
    listing.extend(findings(6..8));
    adopt(&mut second, old, &[listing]);
    let end = second.finish_run(old, RunEnd::Succeeded).unwrap();
    assert_eq!(tally(&end), (7, 0, 0, 1, 0));
    assert_eq!(state_of(&second, &finding(5).fingerprint(0)), "fixed");
}

/// Holds (both backends). A newer run that stored a page and then failed still makes the
/// older run, adopted after it, fix nothing (its rows stay touched by the newer run); a
/// later complete run lacking the same finding fixes it.
#[test]
fn a_newer_run_that_stored_a_page_and_failed_still_stops_the_older_runs_fixes() {
    let (db, mut first) = temp_store();
    import(&mut first, "shop", &[findings(0..8)], RunEnd::Succeeded);
    let old = left_running(&mut first, "shop", &[]);
    let mut third = other_process(&db);
    let newer = third.begin_run(&scope("shop")).unwrap();
    third.upsert_page(newer, &findings(0..2)).unwrap();
    third
        .finish_run(newer, RunEnd::Failed("vendor 500".into()))
        .unwrap();
    let mut second = other_process(&db);
    let listing: Vec<Finding> = findings(0..8)
        .into_iter()
        .filter(|f| *f != finding(5))
        .collect();
    adopt(&mut second, old, std::slice::from_ref(&listing));
    let end = second.finish_run(old, RunEnd::Succeeded).unwrap();
    assert_eq!((end.counts.fixed, end.counts.missing), (0, 0));
    let next = import(&mut second, "shop", &[listing], RunEnd::Succeeded);
    assert_eq!(tally(&next), (7, 0, 0, 1, 0));
}

// ---- (3) Fixes by other paths: the vendor's word, the notifications ----

/// Was a BREAK, mended in session 12 (both backends). A run's first page carries the vendor's "resolved" for finding 0
/// (fixed; its `fixed` event is the run's), then its process stops while the vendor scan
/// goes on. A newer run lists finding 0 open again (the vendor's newer scan): `reopened`,
/// and its end announces `findings.reopened`. Then the older run ends late: adopted and
/// completed (it fixes nothing, a newer run succeeded), or ended `interrupted` by the
/// daemon's sweep after a kill. Either way its notifications are built from its events
/// and `findings.fixed` has no "still fixed" condition (`findings.new` and
/// `findings.reopened` have one): finding 0 is announced fixed after its reopening, and a
/// receiver's last word on it is "fixed" while the store has it open.
#[test]
fn a_late_older_run_does_not_announce_a_fix_the_newer_run_reopened() {
    let mut got = Vec::new();
    for adopted in [true, false] {
        let (db, mut first) = temp_store();
        import(&mut first, "shop", &[findings(0..6)], RunEnd::Succeeded);
        let page = [vec![resolved(0)], findings(1..6)].concat();
        let old = left_running(&mut first, "shop", std::slice::from_ref(&page));
        let mut second = other_process(&db);
        second.set_webhook_routes(vec![changes_route()], crate::webhooks::payload::body);
        let newer = import(&mut second, "shop", &[findings(0..6)], RunEnd::Succeeded);
        assert_eq!(tally(&newer), (6, 0, 1, 0, 0));
        let zero = finding(0).fingerprint(0);
        assert_eq!(
            last_word(&second, &zero).as_deref(),
            Some("findings.reopened")
        );
        if adopted {
            adopt(&mut second, old, std::slice::from_ref(&page));
            second.finish_run(old, RunEnd::Succeeded).unwrap();
        } else {
            second
                .end_abandoned_run(old, "interrupted: its process is gone")
                .unwrap()
                .unwrap();
        }
        got.push((adopted, state_of(&second, &zero), last_word(&second, &zero)));
    }
    assert_eq!(
        got,
        [true, false].map(|a| (a, "reopened".to_string(), Some("findings.reopened".into()))),
        "the newer listing has finding 0 open"
    );
}

/// Was a BREAK, mended in session 12 (both backends; by the s12 rule). An older run R is adopted after a newer run N
/// stored its first page (findings 0..3) and stopped. R's older vendor scan calls finding 3
/// resolved; N has not stored 3 yet, so R's upsert changes the row: `fixed`, counted and
/// announced at R's end, although that end "fixes nothing (the newer run's end decides)".
/// N, adopted, lists 3 open (its newer vendor scan): `reopened`. A fix announced and then
/// reopened, taken from a listing the store already knew was not the newest: the
/// `RunContext::overtaken_by` rule stops only the pass, not the vendor's word of the same listing.
#[test]
fn an_older_run_overtaken_by_a_newer_runs_page_fixes_nothing_by_the_vendors_word_either() {
    let (db, mut first) = temp_store();
    import(&mut first, "shop", &[findings(0..6)], RunEnd::Succeeded);
    let old = left_running(&mut first, "shop", &[]);
    let mut third = other_process(&db);
    let newer = left_running(&mut third, "shop", &[findings(0..3)]);
    let mut second = other_process(&db);
    second.set_webhook_routes(vec![changes_route()], crate::webhooks::payload::body);
    adopt(
        &mut second,
        old,
        &[[findings(0..3), vec![resolved(3)], findings(4..6)].concat()],
    );
    let end = second.finish_run(old, RunEnd::Succeeded).unwrap();
    adopt(&mut second, newer, &[findings(0..6)]);
    let last = second.finish_run(newer, RunEnd::Succeeded).unwrap();
    assert_eq!(
        (
            (end.counts.fixed, end.counts.missing),
            (last.counts.reopened, last.counts.fixed),
            absences(&second),
            announced(&second)
                .into_iter()
                .map(|(kind, _, _)| kind)
                .collect::<Vec<_>>()
        ),
        ((0, 0), (0, 0), vec![], vec![]),
        "the newer listing has finding 3 open"
    );
}
