//! JetStream partitions shared by two `serve` instances on one PostgreSQL database (issue 7):
//! loadgen → `tracebudget publish` → a private nats-server (4 partitions) → instance "a"
//! (`[cluster] partitions = [0, 1]`, the evaluator's leader) and "b" (`[2, 3]`). An incident
//! pages; then "a" is killed with SIGKILL mid-run. "b" takes partitions 0 and 1 within its
//! `lock_poll`, leads the evaluator, shows merged totals equal to loadgen's tally exactly, and
//! nobody is paged twice.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tracebudget_tests::{Json, PgDatabase, Server, TempDir, WebhookSink, free_addrs, loadgen, wait_for};

use super::cluster::{config, json, period, wait_until};
use super::jetstream::{Nats, Publisher};

/// The cluster test's config (one journey, a fast page, eval and flush every second) with
/// `[jetstream]` on `nats` (4 partitions) and, unless `cluster` is empty, `[cluster]`.
fn js_config(
    dir: &TempDir,
    instance: &str,
    ports: &[SocketAddr],
    url: &str,
    hook: SocketAddr,
    nats: &str,
    cluster: &str,
) -> PathBuf {
    let path = config(dir, instance, ports, url, hook);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "\n[jetstream]\nurl = \"{nats}\"\npartitions = 4\nbatch = 50\nack_wait = \"10s\"\n"
    ));
    if !cluster.is_empty() {
        text.push_str(&format!("\n[cluster]\n{cluster}\n"));
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_survivor_takes_the_killed_instances_partitions_counts_exactly_and_pages_once() {
    let db = PgDatabase::new("jscluster");
    let dir = TempDir::new("jscluster");
    let nats = Nats::start();
    let ports = free_addrs(13);
    let hook = ports[12];
    let sink = WebhookSink::start(hook).expect("bind the webhook sink");
    // "a" retries free partitions only every 10 s, so it keeps to its own two while "b" starts;
    // "b", the survivor, polls every second.
    let config_a = js_config(
        &dir,
        "a",
        &ports[..4],
        &db.url,
        hook,
        &nats.url(),
        "partitions = [0, 1]\nlock_poll = \"10s\"",
    );
    let config_b = js_config(
        &dir,
        "b",
        &ports[4..8],
        &db.url,
        hook,
        &nats.url(),
        "partitions = [2, 3]\nlock_poll = \"1s\"",
    );
    let config_pub = js_config(&dir, "publisher", &ports[8..12], &db.url, hook, &nats.url(), "");
    let _publisher = Publisher::start(&config_pub, ports[10]);

    let mut a = Server::start(&config_a, ports[0]);
    let m = wait_for(&mut a, Duration::from_secs(10), |m| {
        m.get("tracebudget_cluster_leader", &[]) == Some(1.0)
            && m.get("tracebudget_cluster_partitions_owned", &[]) == Some(2.0)
    });
    assert_eq!(
        m.get("tracebudget_cluster_leader", &[]),
        Some(1.0),
        "{}",
        a.output_block()
    );
    let mut b = Server::start(&config_b, ports[4]);
    let m = wait_for(&mut b, Duration::from_secs(10), |m| {
        m.get("tracebudget_cluster_partitions_owned", &[]) == Some(2.0)
    });
    assert_eq!(
        m.get("tracebudget_cluster_partitions_owned", &[]),
        Some(2.0),
        "{}",
        b.output_block()
    );
    assert_eq!(m.get("tracebudget_cluster_leader", &[]), Some(0.0), "b stands by");
    let owned = |s: &mut Server, p: &str| {
        s.metrics()
            .get("tracebudget_jetstream_position", &[("partition", p)])
            .is_some()
    };
    // Holding a partition's lock comes first; the consumer then claims it and starts reading
    // (its position appears): give that a moment on a loaded machine.
    for (s, parts) in [(&mut a, ["0", "1"]), (&mut b, ["2", "3"])] {
        wait_for(s, Duration::from_secs(20), |m| {
            parts
                .iter()
                .all(|p| m.get("tracebudget_jetstream_position", &[("partition", p)]).is_some())
        });
    }
    for p in ["0", "1"] {
        assert!(owned(&mut a, p) && !owned(&mut b, p), "a consumes partition {p}");
    }
    for p in ["2", "3"] {
        assert!(owned(&mut b, p) && !owned(&mut a, p), "b consumes partition {p}");
    }

    // ~30 s of traffic through publish; every checkout fails from 2 s to 25 s in.
    let sender = {
        let config = config_pub.clone();
        let endpoint = ports[10];
        std::thread::spawn(move || {
            loadgen(
                &[
                    "--config",
                    config.to_str().unwrap(),
                    "--protocol",
                    "http",
                    "--endpoint",
                    &format!("http://{endpoint}"),
                    "--duration",
                    "30s",
                    "--rate",
                    "2000",
                    "--spans-per-request",
                    "64",
                    "--error-rate",
                    "0.02",
                    "--incident",
                    "2s:23s:1.0",
                    "--max-retries",
                    "50",
                    "--seed",
                    "91",
                ],
                Duration::from_secs(120),
            )
        })
    };
    wait_until("the page from a", Duration::from_secs(25), || {
        sink.received().iter().any(|r| r.body.contains("\"status\":\"firing\""))
    });
    // a marked it delivered (else the next leader sends it again, under the same key).
    wait_until("a stored the delivery", Duration::from_secs(10), || {
        let log = json(&a, "/api/v1/notifications");
        let list = log.get("notifications").unwrap().as_array().unwrap();
        !list.is_empty()
            && list
                .iter()
                .all(|n| n.get("state").and_then(Json::as_str) == Some("delivered"))
    });
    assert!(!sender.is_finished(), "the kill comes mid-run");

    let status = a.signal_and_wait("KILL", Duration::from_secs(10));
    assert!(!status.success());
    let m = wait_for(&mut b, Duration::from_secs(10), |m| {
        m.get("tracebudget_cluster_partitions_owned", &[]) == Some(4.0)
            && m.get("tracebudget_cluster_leader", &[]) == Some(1.0)
    });
    assert_eq!(
        m.get("tracebudget_cluster_partitions_owned", &[]),
        Some(4.0),
        "b takes a's partitions\n{}",
        b.output_block()
    );
    assert_eq!(m.get("tracebudget_cluster_leader", &[]), Some(1.0), "b leads");
    assert!(!sender.is_finished(), "b took over while traffic still flowed");

    let sent = sender.join().unwrap();
    assert_eq!(sent.num(&["failed", "requests"]), 0.0, "{sent:?}");
    let want = (
        sent.num(&["journeys", "checkout", "traces"]),
        sent.num(&["journeys", "checkout", "errors"]),
    );
    assert!(want.1 > 0.0 && want.1 < want.0, "{sent:?}");
    // b's own rows (its partitions, then a's from a's last checkpoint) plus a's stored rows.
    wait_until("b shows loadgen's tally", Duration::from_secs(60), || {
        period(&b) == want
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(period(&b), want, "nothing is counted twice later");
    let m = b.metrics();
    assert_eq!(
        m.sum("tracebudget_jetstream_messages_total", &[("outcome", "rejected")]),
        0.0
    );
    for p in ["0", "1", "2", "3"] {
        assert!(
            m.get("tracebudget_jetstream_position", &[("partition", p)]).is_some(),
            "b consumes partition {p}"
        );
    }
    assert_eq!(m.get("tracebudget_cluster_partitions_owned", &[]), Some(4.0));
    assert_eq!(m.get("tracebudget_jetstream_partitions_consumed", &[]), Some(4.0));
    assert_eq!(m.get("tracebudget_cluster_leader", &[]), Some(1.0));

    // One page, delivered once: b restored a's firing alert and its delivered notification.
    let received = sink.received();
    let mut ids = BTreeMap::new();
    for r in &received {
        let body = Json::parse(&r.body).unwrap();
        let id = body.get("id").unwrap().as_str().unwrap().to_owned();
        assert_eq!(r.header("idempotency-key"), Some(id.as_str()));
        let status = body.get("status").unwrap().as_str().unwrap().to_owned();
        *ids.entry((id, status)).or_insert(0) += 1;
    }
    let firing: Vec<_> = ids.iter().filter(|((_, s), _)| s == "firing").collect();
    assert_eq!(firing.len(), 1, "one page: {ids:?}\n{}", b.output_block());
    assert!(ids.values().all(|n| *n == 1), "no notification twice: {ids:?}");
}
