use super::*;
use std::sync::atomic::AtomicBool;
use tokio::sync::oneshot;

fn dispatcher() -> (Arc<Dispatcher>, watch::Sender<bool>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    (Arc::new(Dispatcher::new(stop_rx)), stop_tx)
}

/// A run that reports its start and then waits to be released.
fn held_run(
    started: mpsc::UnboundedSender<&'static str>,
    name: &'static str,
) -> (
    impl std::future::Future<Output = ()> + Send,
    oneshot::Sender<()>,
) {
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let run = async move {
        let _ = started.send(name);
        let _ = release_rx.await;
    };
    (run, release_tx)
}

const LONG: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_second_dispatch_of_a_running_scan_is_skipped_and_allowed_after_it_ends() {
    let (d, _stop) = dispatcher();
    let (tx, mut started) = mpsc::unbounded_channel();
    let (run, release) = held_run(tx.clone(), "first");
    let span = tracing::Span::none();
    assert_eq!(
        d.dispatch("web", Duration::ZERO, span.clone(), run),
        Dispatched::Started
    );
    assert_eq!(started.recv().await, Some("first"));
    let (again, _r) = held_run(tx.clone(), "second");
    assert_eq!(
        d.dispatch("web", Duration::ZERO, span.clone(), again),
        Dispatched::AlreadyRunning
    );
    release.send(()).unwrap();
    assert!(d.drain(LONG).await);
    let (third, release) = held_run(tx, "third");
    assert_eq!(
        d.dispatch("web", Duration::ZERO, span, third),
        Dispatched::Started
    );
    assert_eq!(started.recv().await, Some("third"));
    release.send(()).unwrap();
    assert!(d.drain(LONG).await);
}

#[tokio::test]
async fn stop_cancels_runs_still_waiting_for_their_delay() {
    let (d, stop) = dispatcher();
    let waiting_ran = Arc::new(AtomicBool::new(false));
    let flag = waiting_ran.clone();
    assert_eq!(
        d.dispatch("a", LONG, tracing::Span::none(), async move {
            flag.store(true, Ordering::SeqCst);
        }),
        Dispatched::Started
    );
    stop.send(true).unwrap();
    assert!(d.drain(LONG).await, "stop ends the wait at once");
    assert!(!waiting_ran.load(Ordering::SeqCst));
    assert_eq!(
        d.dispatch("c", Duration::ZERO, tracing::Span::none(), async {}),
        Dispatched::Stopping
    );
}

#[tokio::test]
async fn drain_reports_a_run_that_does_not_end_in_time() {
    let (d, _stop) = dispatcher();
    let (tx, mut started) = mpsc::unbounded_channel();
    let (run, _release) = held_run(tx, "stuck");
    d.dispatch("stuck", Duration::ZERO, tracing::Span::none(), run);
    assert_eq!(started.recv().await, Some("stuck"));
    assert!(!d.drain(Duration::from_millis(20)).await);
    assert_eq!(d.in_flight(), 1);
}

fn boxed(f: impl std::future::Future<Output = ()> + Send + 'static) -> BoxedRun {
    Box::pin(f)
}

#[tokio::test]
async fn a_push_while_running_queues_one_run_and_later_pushes_join_it() {
    let (d, _stop) = dispatcher();
    let (tx, mut started) = mpsc::unbounded_channel();
    let (first, release_first) = held_run(tx.clone(), "first");
    let span = tracing::Span::none;
    assert_eq!(
        d.dispatch_or_queue("web", span(), 1, boxed(first), boxed(async {})),
        Dispatched::Started
    );
    assert_eq!(started.recv().await, Some("first"));
    let (second, release_second) = held_run(tx.clone(), "second");
    assert_eq!(
        d.dispatch_or_queue("web", span(), 2, boxed(second), boxed(async {})),
        Dispatched::Queued
    );
    let (third, _r) = held_run(tx.clone(), "third");
    assert_eq!(
        d.dispatch_or_queue("web", span(), 3, boxed(third), boxed(async {})),
        Dispatched::Joined(2)
    );
    // A schedule firing meanwhile is still skipped, not queued.
    let (scheduled, _r) = held_run(tx.clone(), "scheduled");
    assert_eq!(
        d.dispatch("web", Duration::ZERO, span(), scheduled),
        Dispatched::AlreadyRunning
    );
    // Another scan (or branch: another key) is not affected.
    let (other, release_other) = held_run(tx.clone(), "other");
    assert_eq!(
        d.dispatch_or_queue("web@dev", span(), 4, boxed(other), boxed(async {})),
        Dispatched::Started
    );
    assert_eq!(started.recv().await, Some("other"));
    release_other.send(()).unwrap();

    release_first.send(()).unwrap();
    assert_eq!(started.recv().await, Some("second"));
    assert_eq!(
        d.in_flight(),
        1,
        "the follow-up runs in the first run's slot"
    );
    release_second.send(()).unwrap();
    assert!(d.drain(LONG).await);
    // The scan is free again: the next push starts at once.
    let (fourth, release) = held_run(tx, "fourth");
    assert_eq!(
        d.dispatch_or_queue("web", span(), 5, boxed(fourth), boxed(async {})),
        Dispatched::Started
    );
    assert_eq!(started.recv().await, Some("fourth"));
    release.send(()).unwrap();
    assert!(d.drain(LONG).await);
    assert!(started.try_recv().is_err(), "no other run started");
}

#[tokio::test]
async fn stop_cancels_a_queued_run_through_its_cancelled_future() {
    let (d, stop) = dispatcher();
    let (tx, mut started) = mpsc::unbounded_channel();
    let (first, release_first) = held_run(tx.clone(), "first");
    d.dispatch_or_queue(
        "web",
        tracing::Span::none(),
        1,
        boxed(first),
        boxed(async {}),
    );
    assert_eq!(started.recv().await, Some("first"));
    let cancelled = Arc::new(AtomicBool::new(false));
    let flag = cancelled.clone();
    let (second, _r) = held_run(tx, "second");
    assert_eq!(
        d.dispatch_or_queue(
            "web",
            tracing::Span::none(),
            2,
            boxed(second),
            boxed(async move { flag.store(true, Ordering::SeqCst) })
        ),
        Dispatched::Queued
    );
    stop.send(true).unwrap();
    release_first.send(()).unwrap();
    assert!(d.drain(LONG).await);
    assert!(cancelled.load(Ordering::SeqCst));
    assert!(started.try_recv().is_err(), "the queued run never started");
    assert_eq!(
        d.dispatch_or_queue(
            "web",
            tracing::Span::none(),
            3,
            boxed(async {}),
            boxed(async {})
        ),
        Dispatched::Stopping
    );
}

fn config_with_scans(scans: Vec<ScanConfig>) -> Config {
    let instance = |vendor: &str| crate::config::InstanceConfig {
        vendor: vendor.into(),
        ..Default::default()
    };
    Config {
        store: crate::config::StoreConfig {
            location: crate::config::StoreLocation::Sqlite("/tmp/unused.db".into()),
            retention: Default::default(),
        },
        daemon: Default::default(),
        instances: [("ct".to_string(), instance("codethreat"))]
            .into_iter()
            .chain([("ct2".to_string(), instance("codethreat"))])
            .collect(),
        scans,
        webhooks: Default::default(),
        server: None,
        suppress: Vec::new(),
    }
}

fn left_running(scan: &str, instance: &str, branch: Option<&str>) -> RunRow {
    RunRow {
        id: 7,
        scan: scan.into(),
        instance: instance.into(),
        vendor: "codethreat".into(),
        bind_to: "project-1".into(),
        branch: branch.map(Into::into),
        trigger: "cli".into(),
        state: RunState::Running,
        vendor_scan_id: Some("vs-1".into()),
        started_at: "2026-01-01T00:00:00.000Z".into(),
        finished_at: None,
        counts: Default::default(),
        error: None,
    }
}

#[test]
fn a_left_run_belongs_to_the_configured_scan_of_its_name_branch_and_instance() {
    let web = ScanConfig {
        name: "web".into(),
        branch: Some("main".into()),
        enabled: false,
        ..ScanConfig::ad_hoc("codethreat", "ct", "project-1")
    };
    let config = config_with_scans(vec![web]);
    let found = scan_for_abandoned(&config, &left_running("web", "ct", Some("main")));
    assert_eq!(
        found.map(|s| s.name),
        Ok("web".into()),
        "disabled scans too"
    );
    let branch = scan_for_abandoned(&config, &left_running("web@dev", "ct", Some("dev")));
    assert_eq!(branch.map(|s| s.name), Ok("web".into()));
    let other = scan_for_abandoned(&config, &left_running("web", "ct2", Some("main")))
        .expect("the run's own instance is configured");
    assert_eq!(
        (other.instance.as_str(), other.name.as_str()),
        ("ct2", "web"),
        "a vendor scan id is polled on the instance that started it, not on the config's"
    );
    let mut unknown = left_running("web", "ct9", Some("main"));
    unknown.vendor = "codethreat".into();
    assert!(
        scan_for_abandoned(&config, &unknown).is_err(),
        "no such instance"
    );
    // A scan gone from the config: the run goes on by what is stored with it.
    let gone = scan_for_abandoned(&config, &left_running("gone", "ct", None)).unwrap();
    assert_eq!(
        (gone.name.as_str(), gone.bind_to.as_str()),
        ("gone", "project-1")
    );
    // The binding stored with the run wins over today's config.
    let mut moved = left_running("web", "ct", Some("main"));
    moved.bind_to = "project-old".into();
    assert_eq!(
        scan_for_abandoned(&config, &moved).unwrap().bind_to,
        "project-old"
    );
}

#[test]
fn a_left_run_of_an_ad_hoc_scan_gets_the_same_ad_hoc_scan() {
    let config = config_with_scans(Vec::new());
    let row = left_running("codethreat-project-1@main", "ct2", Some("main"));
    let scan = scan_for_abandoned(&config, &row).expect("ad hoc");
    assert_eq!(
        (
            scan.name.as_str(),
            scan.instance.as_str(),
            scan.bind_to.as_str()
        ),
        ("codethreat-project-1", "ct2", "project-1")
    );
    let mut other_vendor = row.clone();
    other_vendor.vendor = "saltsecurity".into();
    assert!(scan_for_abandoned(&config, &other_vendor).is_err());
}
