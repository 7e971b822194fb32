//! The consumer: one durable pull consumer per owned partition, exactly-once with the flusher.
//!
//! Per partition: claim it in the database (its checkpoint and open traces come back; a flush of
//! an instance that consumed it before now fails instead of counting twice), restore its open
//! traces, then pull through a durable consumer made afresh to deliver from the position + 1 in
//! stream order (see [`Partition::consumer`] for why). A message at or below the position (a
//! redelivery after `ack_wait`) is skipped and counted; any other is
//! decoded (protobuf, or JSON when its `Content-Type` header says `application/json`) outside the
//! lock and ingested under the pipeline lock together with its position, so a drain sees both or
//! neither. An undecodable message is counted with its reason and still advances the position (a
//! poison message never blocks); a full assembler makes the message wait and retry (never
//! skipped). After each committed flush the newest message at or below the committed position is
//! acked (`AckPolicy::All` acks everything before it). A lost ack only means a redelivery, which is
//! skipped.
//!
//! The owned set comes from a `watch` channel: a partition that appears is started, one that
//! disappears stops pulling, is flushed (so its position and open traces are stored), acked and
//! released (its open traces are forgotten here: the next owner restores them).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{JetStreamConfig, JetStreamMetrics, metrics::PartitionLabels, metrics::RejectLabels};
use crate::decode::{AttrKeys, DecodeError, otlp};
use crate::metrics::EngineMetrics;
use crate::pipeline::{Pipeline, Source};
use crate::receiver::wall_clock;
use crate::store::{Committed, FlushHandle, SliStore};

/// The partitions this instance should consume; the cluster's partition locks (or the config)
/// send a new set whenever it changes.
pub type OwnedPartitions = watch::Receiver<BTreeSet<u32>>;

/// How long to wait before retrying a failed NATS or database step.
const RETRY: Duration = Duration::from_millis(500);
/// How long a full assembler makes a message wait before the next try.
const FULL_WAIT: Duration = Duration::from_millis(50);

/// Everything the partition consumers share.
#[derive(Debug, Clone)]
pub struct Consumer {
    pub config: JetStreamConfig,
    pub pipeline: Arc<Mutex<Pipeline>>,
    pub store: SliStore,
    pub keys: AttrKeys,
    pub engine_metrics: Arc<EngineMetrics>,
    pub metrics: Arc<JetStreamMetrics>,
    pub committed: watch::Receiver<Committed>,
    pub flush: FlushHandle,
}

/// Creates the stream when it is missing (file storage, subjects `<subject_prefix>.>`).
pub async fn ensure_stream(js: &jetstream::Context, config: &JetStreamConfig) -> Result<stream::Stream, String> {
    js.get_or_create_stream(stream::Config {
        name: config.stream.clone(),
        subjects: vec![format!("{}.>", config.subject_prefix)],
        storage: stream::StorageType::File,
        duplicate_window: config.duplicate_window.0,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("cannot create or find stream {}: {e}", config.stream))
}

/// Connects to NATS; start-up does not wait for the server (the client retries in the background).
pub async fn connect(url: &str) -> Result<async_nats::Client, String> {
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .connect(url)
        .await
        .map_err(|e| format!("cannot connect to NATS at {}: {e}", super::config::shown_url(url)))
}

impl Consumer {
    /// Consumes the owned partitions until `stop`; returns when every partition task has ended.
    pub async fn run(self, mut owned: OwnedPartitions, stop: CancellationToken) -> std::io::Result<()> {
        let client = match connect(&self.config.url).await {
            Ok(c) => c,
            Err(e) => return Err(std::io::Error::other(e)),
        };
        let js = jetstream::new(client.clone());
        let mut tasks: BTreeMap<u32, (CancellationToken, JoinHandle<()>)> = BTreeMap::new();
        let mut gone: Vec<(u32, JoinHandle<()>)> = Vec::new();
        loop {
            let want = owned.borrow_and_update().clone();
            for (&p, (token, _)) in &tasks {
                if !want.contains(&p) {
                    token.cancel();
                }
            }
            let stopping: Vec<u32> = tasks.keys().filter(|p| !want.contains(p)).copied().collect();
            for p in stopping {
                let (_, handle) = tasks.remove(&p).expect("listed");
                gone.push((p, handle));
            }
            // A partition handed back must be released (flushed, forgotten) before it starts again.
            for (p, handle) in gone.drain(..) {
                let _ = handle.await;
                tracing::info!(partition = p, "stopped consuming the partition");
            }
            for &p in &want {
                if let std::collections::btree_map::Entry::Vacant(slot) = tasks.entry(p) {
                    let token = stop.child_token();
                    let task = Partition {
                        c: self.clone(),
                        js: js.clone(),
                        client: client.clone(),
                        p,
                        stop: stop.clone(),
                        handed_back: token.clone(),
                    };
                    slot.insert((token, tokio::spawn(task.run())));
                }
            }
            self.metrics.partitions.set(tasks.len() as i64);
            tokio::select! {
                _ = stop.cancelled() => break,
                changed = owned.changed() => if changed.is_err() {
                    // The sender is gone: keep what we have until stop.
                    stop.cancelled().await;
                    break;
                },
            }
        }
        for (_, (_, handle)) in tasks {
            let _ = handle.await;
        }
        Ok(())
    }
}

/// One partition's consumer.
struct Partition {
    c: Consumer,
    js: jetstream::Context,
    client: async_nats::Client,
    p: u32,
    /// The whole process stops.
    stop: CancellationToken,
    /// This partition is handed back (also cancelled by `stop`).
    handed_back: CancellationToken,
}

/// What the partition task keeps between messages.
struct State {
    /// The position stored when consumption started: at or below it, skipped as committed.
    checkpoint: u64,
    /// The newest sequence ingested (or skipped as poison) here.
    position: u64,
    /// Messages not yet acked: (sequence, reply subject), oldest first.
    unacked: VecDeque<(u64, async_nats::Subject)>,
}

impl Partition {
    async fn run(self) {
        let Some(mut state) = self.open().await else {
            return;
        };
        let labels = PartitionLabels { partition: self.p };
        let mut committed = self.c.committed.clone();
        'consume: while !self.handed_back.is_cancelled() {
            let Some(consumer) = self.consumer(state.position).await else {
                break;
            };
            let messages = consumer
                .stream()
                .max_messages_per_batch(self.c.config.batch)
                .max_bytes_per_batch(self.c.config.batch_bytes)
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await;
            let mut messages = match messages {
                Ok(m) => m,
                Err(e) => {
                    self.failed("fetch", &e);
                    let _ = self.pause().await;
                    continue;
                }
            };
            loop {
                tokio::select! {
                    _ = self.handed_back.cancelled() => break 'consume,
                    changed = committed.changed() => match changed {
                        Ok(()) => self.ack(&mut state).await,
                        // The flusher has stopped: so does everything.
                        Err(_) => break 'consume,
                    },
                    next = messages.next() => match next {
                        Some(Ok(message)) => {
                            if !self.handle(message, &mut state).await {
                                break 'consume;
                            }
                            self.ack(&mut state).await;
                        }
                        Some(Err(e)) => {
                            self.failed("fetch", &e);
                            let _ = self.pause().await;
                            continue 'consume;
                        }
                        None => continue 'consume,
                    },
                }
            }
        }
        if self.stop.is_cancelled() {
            // Shutting down: `serve` flushes once more; the acks of that flush are lost, which
            // only means redeliveries that are skipped.
            return;
        }
        // Handed back: store the partition's position and open traces, ack, then forget them.
        loop {
            if self.c.flush.flush().await {
                break;
            }
            self.c.metrics.error("handover_flush");
            if self.stop.run_until_cancelled(tokio::time::sleep(RETRY)).await.is_none() {
                return;
            }
        }
        self.ack(&mut state).await;
        let forgotten = self.lock().release_partition(self.p);
        self.c.metrics.pending.remove(&labels);
        tracing::info!(partition = self.p, open_traces = forgotten, "handed the partition over");
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pipeline> {
        self.c.pipeline.lock().expect("pipeline lock poisoned")
    }

    fn failed(&self, stage: &'static str, e: &dyn std::fmt::Display) {
        self.c.metrics.error(stage);
        tracing::warn!(partition = self.p, stage, error = %e, "jetstream: retrying");
    }

    async fn pause(&self) -> bool {
        self.handed_back
            .run_until_cancelled(tokio::time::sleep(RETRY))
            .await
            .is_some()
    }

    /// Claims the partition and restores its open traces; `None` when stopped first.
    async fn open(&self) -> Option<State> {
        let (seq, snapshot) = loop {
            match self.c.store.claim_partition(&self.c.config.stream, self.p).await {
                Ok(found) => break found,
                Err(e) => {
                    self.failed("checkpoint", &e);
                    if !self.pause().await {
                        return None;
                    }
                }
            }
        };
        let restored = self
            .lock()
            .open_partition(self.p, seq, snapshot.as_deref(), wall_clock());
        let labels = PartitionLabels { partition: self.p };
        match restored {
            Ok(r) => {
                self.c
                    .metrics
                    .restored_traces
                    .get_or_create(&labels)
                    .inc_by(r.open_traces);
                tracing::info!(
                    partition = self.p,
                    checkpoint = seq,
                    open_traces = r.open_traces,
                    spans = r.spans,
                    "consuming the partition"
                );
            }
            Err(e) => {
                // The counts are safe; only completeness of the traces open at the checkpoint is lost.
                self.c.metrics.error("snapshot");
                tracing::error!(partition = self.p, error = %e, "the stored open traces do not decode; starting without them");
            }
        }
        self.c.metrics.position.get_or_create(&labels).set(seq as i64);
        Some(State {
            checkpoint: seq,
            position: seq,
            unacked: VecDeque::new(),
        })
    }

    /// The partition's durable consumer, made afresh to deliver from `position + 1` in stream
    /// order; `None` when stopped first.
    ///
    /// Made afresh each time pulling (re)starts: the database's position is the truth, not the
    /// server's consumer state. Otherwise messages delivered to a process that died (or left in
    /// a dropped pull's buffer) would be redelivered only after `ack_wait`, *after* newer ones;
    /// the newer ones would move the position past them, and they would be skipped, then acked
    /// by `AckPolicy::All` — lost. From `position + 1` in order, the only messages at or below
    /// the position are redeliveries of what this process ingested.
    async fn consumer(&self, position: u64) -> Option<jetstream::consumer::Consumer<pull::Config>> {
        let config = &self.c.config;
        let name = config.durable(self.p);
        loop {
            let got = async {
                let stream = super::consumer::ensure_stream(&self.js, config).await?;
                match stream.delete_consumer(&name).await {
                    Ok(_) => {}
                    Err(e) if e.to_string().contains("not found") => {}
                    Err(e) => return Err(format!("cannot reset consumer {name}: {e}")),
                }
                stream
                    .create_consumer(pull::Config {
                        durable_name: Some(name.clone()),
                        filter_subject: config.subject(self.p),
                        ack_policy: jetstream::consumer::AckPolicy::All,
                        ack_wait: config.ack_wait.0,
                        max_ack_pending: config.max_ack_pending,
                        deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                            start_sequence: position + 1,
                        },
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| format!("cannot create consumer {name}: {e}"))
            }
            .await;
            match got {
                Ok(c) => return Some(c),
                Err(e) => {
                    self.failed("consumer", &e);
                    if !self.pause().await {
                        return None;
                    }
                }
            }
        }
    }

    /// Takes one message; `false` when handed back while it waited for room.
    async fn handle(&self, message: jetstream::Message, state: &mut State) -> bool {
        let p = self.p;
        let m = &self.c.metrics;
        let labels = PartitionLabels { partition: p };
        let (seq, pending) = match message.info() {
            Ok(info) => (info.stream_sequence, info.pending),
            Err(e) => {
                // Not a stream message (no JetStream reply subject): nothing to count or ack.
                m.rejects
                    .get_or_create(&RejectLabels {
                        partition: p,
                        reason: "no_metadata",
                    })
                    .inc();
                tracing::warn!(partition = p, error = %e, "a message without JetStream metadata");
                return true;
            }
        };
        m.pending.get_or_create(&labels).set(pending as i64);
        let reply = message.message.reply.clone();
        let remember = |state: &mut State| {
            if let Some(reply) = reply {
                state.unacked.push_back((seq, reply));
            }
        };
        if seq <= state.checkpoint {
            m.message(p, "skipped_committed");
            remember(state);
            return true;
        }
        if seq <= state.position {
            m.message(p, "skipped_redelivered");
            remember(state);
            return true;
        }
        let json = message
            .message
            .headers
            .as_ref()
            .and_then(|h| h.get("Content-Type"))
            .is_some_and(|v| v.as_str().split(';').next().unwrap_or("").trim() == "application/json");
        let payload: Bytes = message.message.payload.clone();
        drop(message);
        let decoded = if json {
            otlp::decode_json(&payload, &self.c.keys)
        } else {
            otlp::decode_protobuf(payload, &self.c.keys)
        };
        let decoded = match decoded {
            Ok(d) => d,
            Err(e) => {
                let reason = match &e {
                    DecodeError::Protobuf(_) => "invalid_protobuf",
                    DecodeError::Json(_) => "invalid_json",
                    DecodeError::Empty { .. } => "empty",
                    DecodeError::NoKnownKeys { .. } => "no_known_keys",
                };
                m.rejects.get_or_create(&RejectLabels { partition: p, reason }).inc();
                m.message(p, "rejected");
                tracing::warn!(partition = p, seq, error = %e, "skipped an undecodable message");
                self.lock().advance_position(p, seq);
                state.position = seq;
                m.position.get_or_create(&labels).set(seq as i64);
                remember(state);
                return true;
            }
        };
        self.c.engine_metrics.decoded(Source::JetStream.as_str(), &decoded);
        let mut spans = Some(decoded.spans);
        loop {
            {
                let mut pipeline = self.lock();
                if !pipeline.is_full() {
                    let spans = spans.take().expect("ingested once");
                    // Not full under this very lock hold: the batch is taken whole.
                    let now = wall_clock();
                    if pipeline.ingest(Source::JetStream, spans, now).is_ok() {
                        pipeline.ingest_tags(&decoded.tags, now);
                    }
                    pipeline.advance_position(p, seq);
                    break;
                }
            }
            m.backpressure_waits.get_or_create(&labels).inc();
            self.ack(state).await;
            if self
                .handed_back
                .run_until_cancelled(tokio::time::sleep(FULL_WAIT))
                .await
                .is_none()
            {
                // Not ingested: the next owner gets it again.
                return false;
            }
        }
        state.position = seq;
        m.position.get_or_create(&labels).set(seq as i64);
        m.message(p, "ingested");
        remember(state);
        true
    }

    /// Acks the newest message at or below the committed position (it acks all before it).
    async fn ack(&self, state: &mut State) {
        let committed = self
            .c
            .committed
            .borrow()
            .get(&self.p)
            .copied()
            .unwrap_or(0)
            .max(state.checkpoint);
        let labels = PartitionLabels { partition: self.p };
        self.c.metrics.committed.get_or_create(&labels).set(committed as i64);
        let mut newest = None;
        while state.unacked.front().is_some_and(|(seq, _)| *seq <= committed) {
            newest = state.unacked.pop_front();
        }
        if let Some((_, reply)) = newest {
            match self.client.publish(reply, Bytes::from_static(b"+ACK")).await {
                Ok(()) => {
                    self.c.metrics.acks.get_or_create(&labels).inc();
                }
                Err(e) => {
                    self.c.metrics.ack_failures.get_or_create(&labels).inc();
                    tracing::warn!(partition = self.p, error = %e, "an ack was not sent; the server will redeliver, and the redelivery is skipped");
                }
            }
        }
    }
}
