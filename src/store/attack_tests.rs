//! Adversarial tests (branch `attack`): each one shows a way the promise "a finding is
//! `fixed` only when the vendor no longer reports it, and nothing false reaches the store or a
//! webhook" still breaks. Each FAILS on the code it was written against.

use super::tests::{count, finding, findings, import, other_process, scope, temp_store};
use super::*;
use crate::config::{EventType, Route};
use crate::finding::Verdict;

fn resolved(n: usize) -> Finding {
    let mut f = finding(n);
    f.vendor_status = Some("Resolved".into());
    f.verdict = Some(Verdict::Resolved);
    f
}

fn state_of(store: &Store, f: &Finding) -> FindingState {
    let fp = f.fingerprint(0);
    store
        .findings(&FindingFilter::default())
        .unwrap()
        .into_iter()
        .find(|r| r.fingerprint == fp)
        .expect("stored")
        .state
}

fn route(events: &[EventType]) -> Route {
    Route {
        name: "hook".into(),
        events: events.to_vec(),
        min_severity: None,
        scans: Vec::new(),
    }
}

/// `(event_type, run_id, fingerprints listed)` of every outbox row.
fn outbox(store: &Store) -> Vec<(String, i64, Vec<String>)> {
    let mut stmt = store
        .conn
        .prepare("SELECT event_type, run_id, payload FROM webhook_outbox ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((r.get::<String>(0)?, r.get::<i64>(1)?, r.get::<String>(2)?))
    })
    .unwrap()
    .map(|r| {
        let (e, run, p) = r.unwrap();
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        let fps = v["data"]["findings"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| f["fingerprint"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        (e, run, fps)
    })
    .collect()
}

// ---------------------------------------------------------------------------------------
// 1. Mass-fix guard: the share is taken over a denominator that includes the findings the
//    same listing has just created, so a listing that swaps every known finding for others
//    (another project's, another branch's) is never "more than half" and never "every one".

#[test]
fn guard_a_listing_that_swaps_every_known_finding_for_new_ones_fixes_them_all_unheld() {
    let (_dir, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..30)], RunEnd::Succeeded);
    // The vendor now answers with 30 findings none of which the scan ever had: every one
    // of the scan's 30 findings is absent. That is "every one of them" and 100 % > 50 %.
    let swapped = import(&mut store, "shop", &[findings(100..130)], RunEnd::Succeeded);
    assert_eq!(
        (swapped.counts.fixed, swapped.counts.missing),
        (0, 30),
        "all 30 known findings vanished at once: the guard must hold them as missing"
    );
}

#[test]
fn guard_a_small_scan_whose_every_finding_vanishes_beside_one_new_is_fixed_unheld() {
    let (_dir, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..5)], RunEnd::Succeeded);
    // "or every one of them, at any size": all 5 known findings are absent; one unrelated
    // new finding in the listing defeats the `absent == present` test.
    let run = import(&mut store, "shop", &[findings(100..101)], RunEnd::Succeeded);
    assert_eq!(
        (run.counts.fixed, run.counts.missing),
        (0, 5),
        "every finding of the scan is absent: held as missing, not fixed"
    );
}

// ---------------------------------------------------------------------------------------
// 2. A triaged finding that returns after a fix goes back to its triage (state right), but
//    the trigger writes a `reopened` event: the run counts it reopened and webhooks get
//    `findings.reopened` for a finding a person marked false positive.

#[test]
fn a_triaged_finding_back_after_a_fix_is_not_counted_or_announced_as_reopened() {
    let (_dir, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..30)], RunEnd::Succeeded);
    store
        .set_local_state(
            "shop",
            &finding(0).fingerprint(0),
            FindingState::FalsePositive,
        )
        .unwrap();
    import(&mut store, "shop", &[findings(1..30)], RunEnd::Succeeded);
    assert_eq!(state_of(&store, &finding(0)), FindingState::Fixed);
    store.set_webhook_routes(
        vec![route(&[EventType::FindingsReopened])],
        crate::webhooks::payload::body,
    );
    let back = import(&mut store, "shop", &[findings(0..30)], RunEnd::Succeeded);
    assert_eq!(state_of(&store, &finding(0)), FindingState::FalsePositive);
    assert_eq!(
        back.counts.reopened, 0,
        "it returned to its triage, not reopened"
    );
    assert!(
        outbox(&store).is_empty(),
        "no findings.reopened for a false positive: {:?}",
        outbox(&store)
    );
}

// ---------------------------------------------------------------------------------------
// 3. Run counters: a listed finding the vendor calls resolved is counted `fixed` AND `open`
//    (open = seen − new − reopened), so open + fixed > seen.

#[test]
fn a_finding_listed_resolved_is_counted_fixed_and_not_also_open() {
    let (_dir, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..3)], RunEnd::Succeeded);
    let page = vec![finding(0), finding(1), resolved(2)];
    let run = import(&mut store, "shop", &[page], RunEnd::Succeeded);
    assert_eq!(state_of(&store, &finding(2)), FindingState::Fixed);
    assert_eq!(run.counts.fixed, 1);
    assert_eq!(
        run.counts.open, 2,
        "seen 3 = 2 still open + 1 fixed by the vendor's word; counts: {:?}",
        run.counts
    );
}

// ---------------------------------------------------------------------------------------
// 4. A finding first seen already resolved at the vendor is inserted `fixed` with a
//    `created` event: it is counted `new` and announced in `findings.new` although it was
//    never open here.

#[test]
fn a_finding_first_seen_resolved_is_not_announced_or_counted_as_new() {
    let (_dir, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..3)], RunEnd::Succeeded);
    store.set_webhook_routes(
        vec![route(&[EventType::FindingsNew])],
        crate::webhooks::payload::body,
    );
    let mut page = findings(0..3);
    page.push(resolved(50));
    let run = import(&mut store, "shop", &[page], RunEnd::Succeeded);
    assert_eq!(state_of(&store, &resolved(50)), FindingState::Fixed);
    assert_eq!(
        run.counts.new, 0,
        "nothing open appeared; counts: {:?}",
        run.counts
    );
    assert!(
        outbox(&store).is_empty(),
        "findings.new announced a finding that is fixed: {:?}",
        outbox(&store)
    );
}

// ---------------------------------------------------------------------------------------
// 5. Triaging a fixed finding revives it: `set_local_state` puts `false_positive` on a row
//    the vendor no longer lists (it leaves the fixed state), and the next complete run
//    "fixes" it again: a second `fixed` event, counted and announced, for a fix that
//    happened long ago.

#[test]
fn triaging_a_fixed_finding_keeps_it_fixed_and_announces_no_second_fix() {
    let (_dir, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..30)], RunEnd::Succeeded);
    import(&mut store, "shop", &[findings(1..30)], RunEnd::Succeeded);
    assert_eq!(state_of(&store, &finding(0)), FindingState::Fixed);
    store
        .set_local_state("shop", &finding(0).fingerprint(0), FindingState::Accepted)
        .unwrap();
    let state_after_triage = state_of(&store, &finding(0));
    store.set_webhook_routes(
        vec![route(&[EventType::FindingsFixed])],
        crate::webhooks::payload::body,
    );
    let next = import(&mut store, "shop", &[findings(1..30)], RunEnd::Succeeded);
    assert_eq!(
        next.counts.fixed, 0,
        "nothing was fixed by this run (the finding was triaged while fixed: {state_after_triage})"
    );
    assert!(outbox(&store).is_empty(), "{:?}", outbox(&store));
    assert_eq!(
        state_after_triage,
        FindingState::Fixed,
        "the vendor no longer reports it: it stays fixed (the triage is remembered)"
    );
}

// ---------------------------------------------------------------------------------------
// 6. An older run adopted after a newer run succeeded "imports without fixing", but what it
//    imports contradicts the newer complete listing: a finding the newer run found absent is
//    inserted `new`, counted and announced by `findings.new`, and stays open until a third
//    run fixes it (and announces `findings.fixed`).

#[test]
fn an_older_run_adopted_late_does_not_revive_a_finding_the_newer_complete_listing_lacks() {
    let (dir, mut first) = temp_store();
    let mut second = other_process(&dir);
    import(&mut first, "shop", &[findings(0..10)], RunEnd::Succeeded);
    // Old vendor scan started (it will list 0..10 plus 77, found then and fixed since).
    let old = first.begin_run(&scope("shop")).unwrap();
    first.set_vendor_scan_id(old, "vs-old").unwrap();
    first.detach_run(old).unwrap();
    first.release_owner().unwrap();
    // A newer complete run lists 0..10 only: 77 is not there.
    let newer = second.begin_run(&scope("shop")).unwrap();
    second.upsert_page(newer, &findings(0..10)).unwrap();
    second.finish_run(newer, RunEnd::Succeeded).unwrap();
    // The old run is adopted and reads its (older) vendor scan.
    second.set_webhook_routes(
        vec![route(&[EventType::FindingsNew])],
        crate::webhooks::payload::body,
    );
    second.adopt_run(old).unwrap().unwrap().unwrap();
    let mut stale = findings(0..10);
    stale.push(finding(77));
    second.upsert_page(old, &stale).unwrap();
    let row = second.finish_run(old, RunEnd::Succeeded).unwrap();
    assert_eq!(row.counts.fixed, 0);
    assert_eq!(
        count(
            &second,
            "SELECT count(*) FROM findings WHERE state IN ('new','open','reopened')"
        ),
        10,
        "the newest complete listing has 10 findings; the store shows more open"
    );
    assert!(
        outbox(&second).is_empty(),
        "findings.new for a finding the newer listing already lacked: {:?}",
        outbox(&second)
    );
}

// ---------------------------------------------------------------------------------------
// 7. An older run that created a finding, then died, is adopted and ends after a newer
//    complete run fixed that finding: its `findings.new` would reach a receiver after the
//    newer run's `findings.fixed`, and leave the receiver believing the finding open.

#[test]
fn an_older_run_ending_after_a_newer_run_fixed_what_it_created_announces_it_as_new_no_more() {
    let (dir, mut first) = temp_store();
    let mut second = other_process(&dir);
    import(&mut first, "shop", &[findings(0..10)], RunEnd::Succeeded);
    let old = first.begin_run(&scope("shop")).unwrap();
    first.set_vendor_scan_id(old, "vs-old").unwrap();
    let mut with_77 = findings(0..10);
    with_77.push(finding(77));
    first.upsert_page(old, &with_77).unwrap();
    first.detach_run(old).unwrap();
    first.release_owner().unwrap();
    // A newer complete run no longer lists 77: fixed (1 of 11 is under the guard).
    second.set_webhook_routes(
        vec![route(&[EventType::FindingsNew, EventType::FindingsFixed])],
        crate::webhooks::payload::body,
    );
    let newer = second.begin_run(&scope("shop")).unwrap();
    second.upsert_page(newer, &findings(0..10)).unwrap();
    let row = second.finish_run(newer, RunEnd::Succeeded).unwrap();
    assert_eq!(row.counts.fixed, 1);
    assert_eq!(state_of(&second, &finding(77)), FindingState::Fixed);
    // The old run is adopted and ends.
    second.adopt_run(old).unwrap().unwrap().unwrap();
    second.finish_run(old, RunEnd::Succeeded).unwrap();
    assert_eq!(state_of(&second, &finding(77)), FindingState::Fixed);
    let sent = outbox(&second);
    assert!(
        sent.iter().all(|(event, _, _)| event != "findings.new"),
        "findings.new for a finding a newer run fixed, announced after its fix: {sent:?}"
    );
    assert!(
        sent.iter()
            .any(|(event, run, _)| event == "findings.fixed" && *run == newer),
        "{sent:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Branch attack3.
// ---------------------------------------------------------------------------------------

// 8. The guard's denominator subtracts every finding the run created, including the ones
//    created already `fixed` (listed with the vendor's "resolved" word), which never were
//    among the scan's present findings. A listing that swaps the scan's findings for another
//    project's resolved history then fixes every real finding at once, unheld.

#[test]
fn guard_a_listing_of_unknown_resolved_findings_still_holds_every_known_one() {
    let (_dir, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..30)], RunEnd::Succeeded);
    // The vendor answers with 30 findings the scan never had, all resolved (another
    // project's history): every one of the scan's 30 findings is absent.
    let lie: Vec<Finding> = (100..130).map(resolved).collect();
    let run = import(&mut store, "shop", &[lie], RunEnd::Succeeded);
    assert_eq!(
        (run.counts.fixed, run.counts.missing),
        (0, 30),
        "every known finding vanished at once: held as missing, not fixed"
    );
}

#[test]
fn guard_share_is_not_diluted_by_findings_created_already_resolved() {
    let (_dir, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..30)], RunEnd::Succeeded);
    // 16 of the scan's 30 findings are absent (53 % > 50 %), beside 10 unknown ones the
    // vendor lists as resolved.
    let mut page = findings(0..14);
    page.extend((100..110).map(resolved));
    let run = import(&mut store, "shop", &[page], RunEnd::Succeeded);
    assert_eq!(
        (run.counts.fixed, run.counts.missing),
        (0, 16),
        "16 of 30 present findings absent is more than fix_guard 0.5: held"
    );
}

// 9. "An older run adopted late never overrides what the newer one decided": the stale
//    flag only changes what an INSERT stores. A finding fixed before both runs, absent from
//    the newer complete listing (so the newer run never touched its row), is listed by the
//    older vendor scan: the old run reopens it and announces `findings.reopened`.

#[test]
fn an_older_run_adopted_late_does_not_reopen_a_finding_the_newer_complete_listing_lacks() {
    let (dir, mut first) = temp_store();
    let mut second = other_process(&dir);
    let mut with_77 = findings(0..10);
    with_77.push(finding(77));
    import(&mut first, "shop", &[with_77.clone()], RunEnd::Succeeded);
    import(&mut first, "shop", &[findings(0..10)], RunEnd::Succeeded);
    assert_eq!(state_of(&first, &finding(77)), FindingState::Fixed);
    // An old vendor scan that saw 77 come back for a while; its process dies.
    let old = first.begin_run(&scope("shop")).unwrap();
    first.set_vendor_scan_id(old, "vs-old").unwrap();
    first.detach_run(old).unwrap();
    first.release_owner().unwrap();
    // The newer complete run: 77 is not there (it stays fixed, untouched).
    let newer = second.begin_run(&scope("shop")).unwrap();
    second.upsert_page(newer, &findings(0..10)).unwrap();
    second.finish_run(newer, RunEnd::Succeeded).unwrap();
    // The old run is adopted and reads its older vendor scan.
    second.set_webhook_routes(
        vec![route(&[EventType::FindingsReopened])],
        crate::webhooks::payload::body,
    );
    second.adopt_run(old).unwrap().unwrap().unwrap();
    second.upsert_page(old, &with_77).unwrap();
    let row = second.finish_run(old, RunEnd::Succeeded).unwrap();
    assert_eq!(
        state_of(&second, &finding(77)),
        FindingState::Fixed,
        "the newest complete listing lacks 77: an older listing must not reopen it \
         (run counts {:?})",
        row.counts
    );
    assert!(
        outbox(&second).is_empty(),
        "findings.reopened from a listing older than the scan's newest success: {:?}",
        outbox(&second)
    );
}

// 10. Staleness is judged by run id, but a queued run (the listener's push, begun before it
//     waits for its turn) gets its id before it reads anything. When another process's run
//     of the scan begins after it and succeeds first, the queued run then reads the
//     NEWEST listing, yet is treated as older: what it finds new is stored `fixed` (a false
//     fix of a finding the vendor reports right now, never announced), and what its
//     complete listing lacks is never fixed.

#[test]
fn a_queued_run_that_reads_after_a_newer_id_succeeded_is_not_treated_as_stale() {
    let (dir, mut daemon) = temp_store();
    let mut cli = other_process(&dir);
    import(&mut daemon, "shop", &[findings(0..30)], RunEnd::Succeeded);
    daemon.set_webhook_routes(
        vec![route(&[EventType::FindingsNew, EventType::FindingsFixed])],
        crate::webhooks::payload::body,
    );
    // A push: the run row is begun at once, the run waits for its turn (permits).
    let queued = daemon.begin_queued_run(&scope("shop")).unwrap();
    // Meanwhile `scansync sync` in another process runs the scan to its end.
    let by_cli = cli.begin_run(&scope("shop")).unwrap();
    assert!(by_cli > queued);
    cli.upsert_page(by_cli, &findings(0..30)).unwrap();
    cli.finish_run(by_cli, RunEnd::Succeeded).unwrap();
    // The queued run's turn: it reads the vendor NOW. Finding 50 is new, 29 is gone.
    let (claim, queued) = daemon.claim_queued_run("shop", queued).unwrap();
    assert_eq!(claim, ScanClaim::Claimed);
    assert!(
        queued > by_cli,
        "it goes on as a run newer than the one that overtook it"
    );
    let mut now = findings(0..29);
    now.push(finding(50));
    daemon.upsert_page(queued, &now).unwrap();
    let row = daemon.finish_run(queued, RunEnd::Succeeded).unwrap();
    assert_eq!(
        state_of(&daemon, &finding(50)),
        FindingState::New,
        "finding 50 is in the newest listing of the scan; run {queued} counts {:?}",
        row.counts
    );
    assert_eq!(
        state_of(&daemon, &finding(29)),
        FindingState::Fixed,
        "the newest complete listing lacks 29"
    );
    let sent: Vec<String> = outbox(&daemon).into_iter().map(|(e, _, _)| e).collect();
    assert!(
        sent.contains(&"findings.new".to_string()),
        "finding 50 was never announced: {sent:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Round 3 (branch `attack4`).
//
// 10. Mass-fix guard: "the share is of what the scan had before this run", but only rows the
//     run CREATED are taken out of the denominator. Rows it REOPENED (fixed before the run,
//     listed again by it) were not present before the run either, yet count as present: a
//     listing that swaps every present finding for the scan's old, fixed ones (an old vendor
//     scan's results, a rolled-back project) is "half absent", not "every one absent", and
//     fixes every finding the scan had, unheld.

#[test]
fn guard_a_listing_that_swaps_every_present_finding_for_old_fixed_ones_holds_them() {
    let (_dir, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..30)], RunEnd::Succeeded);
    let mut both = findings(0..30);
    both.extend(findings(30..60));
    import(&mut store, "shop", &[both], RunEnd::Succeeded);
    // 0..30 go away (half of 60: not more than fix_guard 0.5, so fixed).
    let gone = import(&mut store, "shop", &[findings(30..60)], RunEnd::Succeeded);
    assert_eq!((gone.counts.fixed, gone.counts.missing), (30, 0));
    // The vendor now answers with the 30 old findings only: every one of the scan's 30
    // present findings (30..60) is absent.
    let swapped = import(&mut store, "shop", &[findings(0..30)], RunEnd::Succeeded);
    assert_eq!(
        (swapped.counts.fixed, swapped.counts.missing),
        (0, 30),
        "every one of the scan's 30 present findings is absent from this listing (it reopened \
         30 findings that were fixed before it): the guard must hold them as missing; run \
         counts {:?}",
        swapped.counts
    );
}

// ---------------------------------------------------------------------------------------------
// Triage (#13) attack review. Promises under test: "on that date the finding returns to open
// (if the vendor still reports it) with an event saying why"; "[[suppress]] ... recorded as
// triage events with the rule's name; a rule removed from the config releases what it
// suppressed at the next run"; `Store::triage`: "one that changes nothing writes nothing".

mod triage_attack {
    use super::super::tests::{accept, finding, id_of, import, rule, temp_store};
    use super::super::*;

    fn kinds(store: &Store, f: &Finding) -> Vec<String> {
        store
            .events_of(id_of(store, f))
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    /// An acceptance whose day came while the guard held the finding `missing`: the listing
    /// that brings it back makes it `open`, but its history says only `returned` — no
    /// `expired` event says why the acceptance is gone (it silently vanishes).
    #[test]
    fn an_acceptance_that_ends_while_missing_is_open_again_with_an_expired_event() {
        let (_dir, mut store) = temp_store();
        let f = finding(1);
        import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
        store
            .triage(id_of(&store, &f), &accept(Some("2020-01-01")))
            .unwrap();
        // An empty listing trips the mass-fix guard: the finding is held as missing.
        import(&mut store, "shop", &[], RunEnd::Succeeded);
        let held = store.finding_by_id(id_of(&store, &f)).unwrap().unwrap();
        assert_eq!(held.state, FindingState::Missing);
        import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
        let back = store.finding_by_id(id_of(&store, &f)).unwrap().unwrap();
        assert_eq!(back.state, FindingState::Open);
        assert_eq!(back.triage, Triage::default(), "the acceptance ended");
        let history = kinds(&store, &f);
        assert!(
            history.contains(&"expired".to_string()),
            "the acceptance (until 2020-01-01) ended and the finding is open again, but no \
             `expired` event says why: {history:?}"
        );
    }

    /// The same through `fixed`: the acceptance ended while the finding was gone; when it
    /// comes back it is `reopened` and the history has no event saying the acceptance ended.
    #[test]
    fn an_acceptance_that_ends_while_fixed_leaves_an_expired_event_when_it_comes_back() {
        let (_dir, mut store) = temp_store();
        let (f, other) = (finding(3), finding(4));
        let both = vec![f.clone(), other.clone()];
        import(
            &mut store,
            "shop",
            std::slice::from_ref(&both),
            RunEnd::Succeeded,
        );
        store
            .triage(id_of(&store, &f), &accept(Some("2020-01-01")))
            .unwrap();
        import(
            &mut store,
            "shop",
            &[vec![other.clone()]],
            RunEnd::Succeeded,
        );
        assert_eq!(
            store
                .finding_by_id(id_of(&store, &f))
                .unwrap()
                .unwrap()
                .state,
            FindingState::Fixed
        );
        import(&mut store, "shop", &[both], RunEnd::Succeeded);
        let back = store.finding_by_id(id_of(&store, &f)).unwrap().unwrap();
        assert_ne!(back.state, FindingState::Accepted);
        let history = kinds(&store, &f);
        assert!(
            history.contains(&"expired".to_string()),
            "the acceptance ended (state {}), but no `expired` event says why: {history:?}",
            back.state
        );
    }

    /// A rule removed while its finding is `missing`: the listing that brings it back makes
    /// it `open` with a `returned` event carrying no rule — no `released` event naming the
    /// rule, though the README promises the release is a triage event with the rule's name.
    #[test]
    fn a_rule_removed_while_its_finding_is_missing_records_the_release() {
        let (_dir, mut store) = temp_store();
        let f = finding(20);
        store.set_suppress_rules(vec![rule("fixtures", "Problem 20")]);
        import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
        import(&mut store, "shop", &[], RunEnd::Succeeded);
        assert_eq!(
            store
                .finding_by_id(id_of(&store, &f))
                .unwrap()
                .unwrap()
                .state,
            FindingState::Missing
        );
        store.set_suppress_rules(Vec::new());
        import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
        let back = store.finding_by_id(id_of(&store, &f)).unwrap().unwrap();
        assert_eq!(back.state, FindingState::Open);
        let events = store.events_of(back.id).unwrap();
        let released = events
            .iter()
            .any(|e| e.kind == "released" && e.rule.as_deref() == Some("fixtures"));
        assert!(
            released,
            "rule \"fixtures\" no longer suppresses the finding (now open), but no `released` \
             event names it: {:?}",
            events
                .iter()
                .map(|e| (e.kind.as_str(), e.new_value.as_deref(), e.rule.as_deref()))
                .collect::<Vec<_>>()
        );
    }

    /// A person's acceptance ends (its day came) on a finding a rule matches: the rule's
    /// triage takes over (the row says `rule:fixtures`), but the only event is `expired`;
    /// no triage event names the rule that now suppresses it.
    #[test]
    fn a_rule_taking_over_from_an_ended_acceptance_is_recorded_with_its_name() {
        let (_dir, mut store) = temp_store();
        let f = finding(20);
        import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
        store
            .triage(id_of(&store, &f), &accept(Some("2020-01-01")))
            .unwrap();
        store.set_suppress_rules(vec![rule("fixtures", "Problem 20")]);
        import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
        let now = store.finding_by_id(id_of(&store, &f)).unwrap().unwrap();
        assert_eq!(now.state, FindingState::FalsePositive);
        assert_eq!(now.triage.who().as_deref(), Some("rule:fixtures"));
        let events = store.events_of(now.id).unwrap();
        assert!(
            events.iter().any(|e| e.rule.as_deref() == Some("fixtures")),
            "the finding is now suppressed by rule \"fixtures\" but no event names the rule: \
             {:?}",
            events
                .iter()
                .map(|e| (e.kind.as_str(), e.new_value.as_deref(), e.rule.as_deref()))
                .collect::<Vec<_>>()
        );
    }

    /// Repeating exactly the same triage on a finding the vendor no longer lists (`fixed`)
    /// writes a new `state_set` event each time: `unchanged` compares the row's state
    /// (`fixed`) with the requested one, which can never be equal for an absent finding.
    #[test]
    fn a_repeated_identical_triage_of_a_fixed_finding_writes_nothing() {
        let (_dir, mut store) = temp_store();
        let (f, other) = (finding(3), finding(4));
        import(
            &mut store,
            "shop",
            &[vec![f.clone(), other.clone()]],
            RunEnd::Succeeded,
        );
        import(
            &mut store,
            "shop",
            &[vec![other.clone()]],
            RunEnd::Succeeded,
        );
        let id = id_of(&store, &f);
        assert_eq!(
            store.finding_by_id(id).unwrap().unwrap().state,
            FindingState::Fixed
        );
        store.triage(id, &accept(Some("2999-01-01"))).unwrap();
        let after_first = store.events_of(id).unwrap().len();
        store.triage(id, &accept(Some("2999-01-01"))).unwrap();
        let after_second = store.events_of(id).unwrap().len();
        assert_eq!(
            after_second, after_first,
            "the second, identical triage changed nothing but wrote an event"
        );
    }
}
