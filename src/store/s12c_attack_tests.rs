//! Attacks on commit 5213194, "two findings of one identity do not trade states" (the
//! identity walk's pass-over: `?32` in `UPSERT_FINDING_SQL`, its twin in `plan_page`, and
//! the re-plan of a page planned alone that reopened, returned or fixed a row). The promise
//! under attack: a finding is `fixed` only when a complete vendor listing, confirmed, no
//! longer has it; nothing false (fixed, missing, new, reopened, counts) reaches the store or
//! a webhook. Each test runs on both backends and, on PostgreSQL, on both import paths
//! (batched and one by one, `both_paths`).
//!
//! A test whose doc comment starts "Was a BREAK" failed when it was written (mended in the
//! same session); "BREAK, OPEN" is ignored, a known limit; the others pinned what held.

use super::s10_attack_tests::{listed_present, no_drift};
use super::s12_attack_tests::{both_paths, changes, resolved_f, state_of, states_of_vid, tally};
use super::tests::{at, findings, import, temp_store};
use super::*;

/// Three sightings of one identity (rule, file, title), told apart by vendor id and line.
fn trio() -> (Finding, Finding, Finding) {
    (
        at(1, 10, Some("v-a")),
        at(1, 40, Some("v-b")),
        at(1, 70, Some("v-c")),
    )
}

/// One page: `head` then findings 2..8 (other identities).
fn with_others(head: &[Finding]) -> Vec<Finding> {
    [head.to_vec(), findings(2..8)].concat()
}

/// The rows of scan "shop".
fn rows(store: &Store) -> i64 {
    store
        .conn
        .query_row(
            "SELECT count(*) FROM findings f JOIN scans s ON s.id = f.scan_id
             WHERE s.name = 'shop'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// A whole run over `pages`, each page sent as many times as `times` says (a retried page:
/// the vendor client sends it again after a timeout of the store's answer).
fn import_resending(store: &mut Store, pages: &[(Vec<Finding>, usize)]) -> RunRow {
    let run = store.begin_run(&super::tests::scope("shop")).unwrap();
    for (page, times) in pages {
        for _ in 0..*times {
            store.upsert_page(run, page).unwrap();
        }
    }
    store.finish_run(run, RunEnd::Succeeded).unwrap()
}

// ---- (1) A page sent again after a pass-over ----

/// Was a BREAK, mended in session 12 (SQLite, and PostgreSQL batched; one by one runs
/// SQLite's statement): a page sent twice in one run is no longer
/// a no-op once its first sending passed over a row. A and B of one identity are rows #0 and
/// #1; the vendor resolves A (#0 `fixed`). The next run's first page lists B alone: B passes
/// over #0 (fixed, #1 present and untouched) and updates #1. The same page again (a retry):
/// B meets #0 first again; now #1 is touched by this run, so the rule no longer passes over
/// and B takes #0: `reopened` (A, gone at the vendor, announced reopened), `seen` counts B
/// twice and `listed_present` one row too many. Root cause: the pass-over only looks at the
/// next row's state and `touched_run_id`, never at whether the row this run already gave
/// the finding (a later occurrence) is this same sighting (`same_sighting`), which the walk
/// checks only on rows it meets touched by the run, i.e. after the one it takes.
#[test]
fn a_page_sent_again_after_a_pass_over_changes_nothing() {
    both_paths(|one_by_one| {
        let (_db, mut store) = temp_store();
        let (a, b, _) = trio();
        import(
            &mut store,
            "shop",
            &[with_others(&[a.clone(), b.clone()])],
            RunEnd::Succeeded,
        );
        import(
            &mut store,
            "shop",
            &[with_others(&[resolved_f(a.clone()), b.clone()])],
            RunEnd::Succeeded,
        );
        let run = import_resending(&mut store, &[(vec![b.clone()], 2), (findings(2..8), 1)]);
        assert_eq!(
            (
                tally(&run),
                changes(&store, run.id),
                listed_present(&store, run.id),
                state_of(&store, &a.fingerprint(0)),
            ),
            ((7, 0, 0, 0, 0), vec![], 7, "fixed".to_string()),
            "B's page was sent twice, nothing changed at the vendor (one by one: {one_by_one})"
        );
        no_drift(&store, "after the run");
    });
}

/// Was a BREAK, mended in session 12 (SQLite, and PostgreSQL batched; one by one runs
/// SQLite's statement): the resolved side of the same flaw is a
/// false `fixed` and a duplicate row. B and A of one identity are rows #0 (B, open) and #1
/// (A, fixed by the vendor's word). The next run lists A resolved on its first page (A
/// passes over #0 to its own fixed row #1), sends that page again (A now takes #0: B's row,
/// open, is made `fixed`, event and count), then lists B open on its next page: #0 and #1
/// are both touched by the run and neither is B's sighting, so B is inserted as a third row
/// (`new`). B, listed open in every run, is announced fixed and new; the scan gains a row.
#[test]
fn a_resolved_page_sent_again_after_a_pass_over_fixes_nothing_and_adds_no_row() {
    both_paths(|one_by_one| {
        let (_db, mut store) = temp_store();
        let (a, b, _) = trio();
        import(
            &mut store,
            "shop",
            &[with_others(&[b.clone(), a.clone()])],
            RunEnd::Succeeded,
        );
        import(
            &mut store,
            "shop",
            &[with_others(&[b.clone(), resolved_f(a.clone())])],
            RunEnd::Succeeded,
        );
        assert_eq!(states_of_vid(&store, "v-a"), ["fixed"]);
        let run = import_resending(
            &mut store,
            &[
                (vec![resolved_f(a.clone())], 2),
                (with_others(std::slice::from_ref(&b)), 1),
            ],
        );
        assert_eq!(
            (tally(&run), changes(&store, run.id), rows(&store)),
            ((8, 0, 0, 0, 0), vec![], 8),
            "A's page was sent twice, nothing changed at the vendor (one by one: {one_by_one})"
        );
        no_drift(&store, "after the run");
    });
}

// ---- (2) Three findings of one identity ----

/// BREAK, OPEN (ignored: a known limit, see the issue note of session 12) (SQLite, and
/// PostgreSQL batched; one by one runs SQLite's statement): the known limit "two fixed rows then a
/// present one" is not only a reopen but a false fix of a listed finding. A, B, C of one
/// identity are rows #0, #1, #2; the vendor resolves A and B (#0, #1 `fixed`). (a) The next
/// listing only puts C first (A and B still listed resolved): C meets #0 (fixed); the next
/// row, #1, is fixed too, so the rule does not pass over and C takes #0: `reopened`; A
/// takes #1 (fixed, no change), B resolved meets #2 (C's row, open) with no row after it:
/// `fixed`. (b) The next listing drops A and B (resolved long enough) and lists C: C takes
/// #0, `reopened`, and #2, C's own row, unlisted, is fixed by the complete run's end. Either
/// way C, listed open throughout, is announced fixed and A reopened. Root cause: the rule
/// looks one occurrence ahead only; a walk should pass over every row in the other state
/// while some later row of the identity, untouched by the run, is in the finding's state
/// (which needs the identity's rows, e.g. a stored identity-base fingerprint column).
#[test]
#[ignore = "open: the trade of states looks one occurrence ahead (see UPSERT_FINDING_SQL); three of one identity, two fixed, still trade"]
fn three_of_one_identity_two_of_them_resolved_neither_reopen_nor_fix() {
    both_paths(|one_by_one| {
        let mut got = Vec::new();
        for drop_resolved in [false, true] {
            let (_db, mut store) = temp_store();
            let (a, b, c) = trio();
            let (ra, rb) = (resolved_f(a.clone()), resolved_f(b.clone()));
            import(
                &mut store,
                "shop",
                &[with_others(&[a.clone(), b.clone(), c.clone()])],
                RunEnd::Succeeded,
            );
            let run = import(
                &mut store,
                "shop",
                &[with_others(&[ra.clone(), rb.clone(), c.clone()])],
                RunEnd::Succeeded,
            );
            assert_eq!(tally(&run), (9, 0, 0, 2, 0));
            let listing = if drop_resolved {
                with_others(std::slice::from_ref(&c))
            } else {
                with_others(&[c.clone(), ra.clone(), rb.clone()])
            };
            let run = import(&mut store, "shop", &[listing], RunEnd::Succeeded);
            got.push((
                drop_resolved,
                (run.counts.new, run.counts.reopened, run.counts.fixed),
                changes(&store, run.id),
            ));
        }
        assert_eq!(
            got,
            [(false, (0, 0, 0), vec![]), (true, (0, 0, 0), vec![])],
            "C is listed open in every run (one by one: {one_by_one})"
        );
    });
}

// ---- (3) Pass-overs that hold ----

/// Holds (both backends, both PostgreSQL paths). A pass-over followed, in the same run, by
/// a finding that takes the row passed over: A and B of one identity, #0 (A) fixed by the
/// vendor's word, #1 (B) open. The vendor lists A open again, after B: on one page, or on
/// pages of their own with another page between. B passes over #0 to #1; A then meets #0
/// with #1 touched by the run and takes it: one `reopened` (A's row), nothing fixed or new,
/// no extra row, the scan's present count right.
#[test]
fn a_row_passed_over_is_taken_by_the_later_finding_it_belongs_to() {
    both_paths(|one_by_one| {
        for split in [false, true] {
            let (_db, mut store) = temp_store();
            let (a, b, _) = trio();
            import(
                &mut store,
                "shop",
                &[with_others(&[a.clone(), b.clone()])],
                RunEnd::Succeeded,
            );
            import(
                &mut store,
                "shop",
                &[with_others(&[resolved_f(a.clone()), b.clone()])],
                RunEnd::Succeeded,
            );
            let pages = if split {
                vec![vec![b.clone()], findings(2..8), vec![a.clone()]]
            } else {
                vec![with_others(&[b.clone(), a.clone()])]
            };
            let run = import(&mut store, "shop", &pages, RunEnd::Succeeded);
            assert_eq!(
                (tally(&run), changes(&store, run.id), rows(&store)),
                (
                    (8, 0, 1, 0, 0),
                    vec![("v-a".to_string(), "reopened".to_string())],
                    8
                ),
                "split: {split}, one by one: {one_by_one}"
            );
            assert_eq!(listed_present(&store, run.id), 8);
            no_drift(&store, "after the run");
        }
    });
}

/// Holds (both backends, both PostgreSQL paths). A resolved finding the vendor lists in
/// every run while its row is `fixed` (and another of its identity listed open before it)
/// writes no event and counts nothing, run after run: the re-plan that a page planned alone
/// triggers by a `fixed`/`reopened`/`returned` event has nothing to trigger on.
#[test]
fn a_resolved_finding_listed_every_run_while_fixed_is_no_event_each_run() {
    both_paths(|one_by_one| {
        let (_db, mut store) = temp_store();
        let (a, b, _) = trio();
        import(
            &mut store,
            "shop",
            &[with_others(&[a.clone(), b.clone()])],
            RunEnd::Succeeded,
        );
        import(
            &mut store,
            "shop",
            &[with_others(&[resolved_f(a.clone()), b.clone()])],
            RunEnd::Succeeded,
        );
        for order in [false, true, false] {
            let head = if order {
                vec![b.clone(), resolved_f(a.clone())]
            } else {
                vec![resolved_f(a.clone()), b.clone()]
            };
            let run = import(&mut store, "shop", &[with_others(&head)], RunEnd::Succeeded);
            assert_eq!(
                (tally(&run), changes(&store, run.id), rows(&store)),
                ((8, 0, 0, 0, 0), vec![], 8),
                "order {order}, one by one: {one_by_one}"
            );
        }
        assert_eq!(states_of_vid(&store, "v-a"), ["fixed"]);
        assert_eq!(states_of_vid(&store, "v-b"), ["open"]);
        no_drift(&store, "after the runs");
    });
}

/// Holds (both backends, both PostgreSQL paths). The next occurrence's row in `missing`
/// (held by the mass-fix guard) counts as present: A (#0) fixed by the vendor's word, B
/// (#1) held `missing` by a run that listed nothing present; B listed again passes over #0
/// and returns its own row to `open`; #0 stays fixed, nothing reopened.
#[test]
fn an_open_finding_passes_over_a_fixed_row_to_its_own_missing_row() {
    both_paths(|one_by_one| {
        let (_db, mut store) = temp_store();
        let (a, b, _) = trio();
        import(
            &mut store,
            "shop",
            &[vec![a.clone(), b.clone()]],
            RunEnd::Succeeded,
        );
        import(
            &mut store,
            "shop",
            &[vec![resolved_f(a.clone())]],
            RunEnd::Succeeded,
        );
        assert_eq!(
            states_of_vid(&store, "v-b"),
            ["missing"],
            "the guard held B"
        );
        let run = import(&mut store, "shop", &[vec![b.clone()]], RunEnd::Succeeded);
        assert_eq!(
            (
                (run.counts.new, run.counts.reopened, run.counts.fixed),
                state_of(&store, &a.fingerprint(0)),
                state_of(&store, &a.fingerprint(1)),
                rows(&store),
            ),
            ((0, 0, 0), "fixed".to_string(), "open".to_string(), 2),
            "one by one: {one_by_one}"
        );
        no_drift(&store, "after the run");
    });
}

/// Holds (both backends, both PostgreSQL paths). The vendor's false-positive word is "not
/// resolved" to the rule: A (#0) fixed by the vendor's word, B (#1) open; B listed as a
/// false positive passes over #0 and takes its own row (`false_positive`); on PostgreSQL
/// the page planned alone put B on #0 (`returned` from fixed) and was planned again.
#[test]
fn a_vendor_false_positive_passes_over_a_fixed_row_to_its_own() {
    both_paths(|one_by_one| {
        let (_db, mut store) = temp_store();
        let (a, b, _) = trio();
        import(
            &mut store,
            "shop",
            &[with_others(&[a.clone(), b.clone()])],
            RunEnd::Succeeded,
        );
        import(
            &mut store,
            "shop",
            &[with_others(&[resolved_f(a.clone()), b.clone()])],
            RunEnd::Succeeded,
        );
        let mut fp = b.clone();
        fp.verdict = Some(crate::finding::Verdict::FalsePositive);
        let run = import(&mut store, "shop", &[with_others(&[fp])], RunEnd::Succeeded);
        assert_eq!(
            (
                tally(&run),
                changes(&store, run.id),
                states_of_vid(&store, "v-a"),
                states_of_vid(&store, "v-b"),
            ),
            (
                (7, 0, 0, 0, 0),
                vec![],
                vec!["fixed".to_string()],
                vec!["false_positive".to_string()]
            ),
            "one by one: {one_by_one}"
        );
        no_drift(&store, "after the run");
    });
}
