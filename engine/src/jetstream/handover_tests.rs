//! The owned-partition interface against a private nats-server (`TRACEBUDGET_NATS_SERVER`, else
//! /usr/sbin/nats-server; missing fails the test): instance "a" consumes both partitions, then
//! hands partition 1 to instance "b" on the same database, mid-stream and with traces open. The
//! two instances together count, and judge the completeness of, every trace exactly once; a
//! stale writer of the handed-over partition can no longer commit.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slis::window::Counts;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Consumer, JetStreamConfig, JetStreamMetrics, split};
use crate::decode::AttrKeys;
use crate::metrics::EngineMetrics;
use crate::pipeline::Pipeline;
use crate::pipeline::tests::{journeys, pipeline};
use crate::receiver::wall_clock;
use crate::store::testing::Databases;
use crate::store::{Committed, Db, Flusher, SliStore, StorageMetrics};
use tracebudget_synth::{Generator, Rates, Shape, ShapeDefaults, Tally};

struct NatsServer(std::process::Child, String);

impl NatsServer {
    fn start(dir: &std::path::Path) -> NatsServer {
        let bin = std::env::var("TRACEBUDGET_NATS_SERVER").unwrap_or_else(|_| "/usr/sbin/nats-server".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(&bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e} (bash .ci/setup-nats.sh installs it)"));
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_millis(20));
        }
        NatsServer(child, format!("nats://127.0.0.1:{port}"))
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One running instance: its pipeline, flusher and consumer, with the owned set to drive.
struct Instance {
    pipeline: Arc<Mutex<Pipeline>>,
    owned: watch::Sender<BTreeSet<u32>>,
    committed: watch::Receiver<Committed>,
    stop: CancellationToken,
    flush_stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn instance(db: &Db, name: &str, config: &JetStreamConfig, owned: &[u32]) -> Instance {
    let (mut p, _) = pipeline(1_000_000);
    p.enable_stream(&config.stream, config.partitions);
    let pipeline = Arc::new(Mutex::new(p));
    let store = SliStore::new(db, name);
    let flusher = Flusher::new(store.clone(), pipeline.clone(), Arc::new(StorageMetrics::default()));
    let committed = flusher.committed();
    let (owned_tx, owned_rx) = watch::channel(owned.iter().copied().collect());
    let consumer = Consumer {
        config: config.clone(),
        pipeline: pipeline.clone(),
        store,
        keys: AttrKeys::from_journeys(&journeys()),
        engine_metrics: Arc::new(EngineMetrics::default()),
        metrics: Arc::new(JetStreamMetrics::default()),
        committed: flusher.committed(),
        flush: flusher.handle(),
    };
    let stop = CancellationToken::new();
    let flush_stop = CancellationToken::new();
    let tasks = vec![
        tokio::spawn({
            let stop = flush_stop.clone();
            async move {
                flusher.run(Duration::from_millis(200), stop).await;
            }
        }),
        tokio::spawn({
            let stop = stop.clone();
            async move {
                consumer.run(owned_rx, stop).await.unwrap();
            }
        }),
    ];
    Instance {
        pipeline,
        owned: owned_tx,
        committed,
        stop,
        flush_stop,
        tasks,
    }
}

impl Instance {
    async fn wait_committed(&mut self, want: &[(u32, u64)]) {
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                if want
                    .iter()
                    .all(|(p, seq)| self.committed.borrow().get(p).is_some_and(|c| c >= seq))
                {
                    return;
                }
                self.committed.changed().await.unwrap();
            }
        })
        .await
        .unwrap_or_else(|_| panic!("not committed: {want:?}, have {:?}", self.committed.borrow()));
    }

    /// Closes every open trace (an hour later) and returns the SLO totals.
    async fn finish(self) -> Vec<Counts> {
        self.stop.cancel();
        self.flush_stop.cancel();
        for t in self.tasks {
            t.await.unwrap();
        }
        let mut p = self.pipeline.lock().unwrap();
        p.tick(wall_clock() + Duration::from_secs(3_600));
        p.slo_totals().map(|(_, _, c)| c).collect()
    }
}

/// Publishes `requests` generated requests split into 2 partitions; returns the last sequence
/// of each partition.
async fn publish(
    js: &async_nats::jetstream::Context,
    config: &JetStreamConfig,
    g: &mut Generator,
    requests: usize,
) -> Vec<(u32, u64)> {
    let mut last = std::collections::BTreeMap::new();
    for _ in 0..requests {
        let batch = g.batch(wall_clock(), 64, u64::MAX);
        for part in split::split(batch.request, config.partitions) {
            let ack = js
                .publish(config.subject(part.partition), part.payload.into())
                .await
                .unwrap()
                .await
                .unwrap();
            last.insert(part.partition, ack.sequence);
        }
    }
    last.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_handed_over_mid_stream_is_counted_and_judged_once() {
    let dir = std::env::temp_dir().join(format!("tracebudget-handover-{}", std::process::id()));
    let nats = NatsServer::start(&dir);
    let dbs = Databases::new("handover").await;
    for (round, url) in dbs.urls().into_iter().enumerate() {
        let db = Db::open(&url).await.unwrap();
        db.migrate().await.unwrap();
        let config = JetStreamConfig {
            url: nats.1.clone(),
            stream: format!("HANDOVER{round}"),
            subject_prefix: format!("handover{round}"),
            partitions: 2,
            batch: 20,
            ..Default::default()
        };
        let client = super::consumer::connect(&config.url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        super::consumer::ensure_stream(&js, &config).await.unwrap();
        let defaults = ShapeDefaults {
            rates: Rates {
                error: 0.1,
                slow: 0.1,
                incomplete: 0.1,
            },
            ..Default::default()
        };
        let mut g = Generator::new(Shape::from_journeys(&journeys(), &defaults).unwrap(), 7).unwrap();

        let mut a = instance(&db, "a", &config, &[0, 1]);
        let first = publish(&js, &config, &mut g, 30).await;
        a.wait_committed(&first).await;
        // Traces are open (trace_idle 30 s): partition 1 moves to "b" with them.
        assert!(a.pipeline.lock().unwrap().buffered_spans() > 0);
        a.owned.send(BTreeSet::from([0])).unwrap();
        tokio::time::timeout(Duration::from_secs(30), async {
            while a.pipeline.lock().unwrap().position(1).is_some() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("partition 1 released");
        let mut b = instance(&db, "b", &config, &[1]);
        let second = publish(&js, &config, &mut g, 30).await;
        a.wait_committed(&second[..1]).await;
        b.wait_committed(&second[1..]).await;

        // A stale writer of partition 1 (say, "a" before it noticed) can no longer commit.
        let (mut stale, _) = pipeline(1_000);
        stale.enable_stream(&config.stream, 2);
        stale.open_partition(1, 1, None, wall_clock()).unwrap();
        let stale = Arc::new(Mutex::new(stale));
        let metrics = Arc::new(StorageMetrics::default());
        let mut f = Flusher::new(SliStore::new(&db, "a"), stale, metrics.clone());
        let e = f.flush().await.unwrap_err();
        assert_eq!(e.what, "partition taken over", "{url}");
        assert!(e.is_fenced());
        // Running, it does not retry such a flush: it stands down at once and says so.
        let fenced = f.fenced();
        let stored = tokio::time::timeout(
            Duration::from_secs(10),
            f.run(Duration::from_millis(10), CancellationToken::new()),
        )
        .await
        .expect("a fenced flusher stops instead of retrying");
        assert!(!stored, "{url}");
        assert!(fenced.is_cancelled(), "{url}");
        let count = |outcome| {
            metrics
                .flushes
                .get_or_create(&crate::store::flusher::OutcomeLabels { outcome })
                .get()
        };
        // The first flush above and the one in `run`; neither is an error to retry.
        assert_eq!((count("fenced"), count("error")), (2, 0), "{url}");

        let (ta, tb) = (a.finish().await, b.finish().await);
        let mut tally = Tally::default();
        for t in g.tally() {
            tally += t;
        }
        // SLOs: error, latency (200 ms), complete; every trace has a root.
        let sum = |i: usize| Counts {
            total: ta[i].total + tb[i].total,
            bad: ta[i].bad + tb[i].bad,
        };
        assert_eq!(
            (sum(0).total, sum(0).bad),
            (tally.traces, tally.errors),
            "{url}: error SLO"
        );
        assert_eq!(
            (sum(2).total, sum(2).bad),
            (tally.traces, tally.incomplete),
            "{url}: completeness SLO"
        );
        assert!(tb[2].total > 0 && ta[2].total > 0, "{url}: both judged traces");
    }
    dbs.drop().await;
    drop(nats);
    let _ = std::fs::remove_dir_all(&dir);
}
