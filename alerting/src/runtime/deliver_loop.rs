//! The two loops of a running instance: the evaluator (leader poll, a cycle every
//! `eval_interval`, hourly prune) and the deliverer (outbox → notifiers), both stopping cleanly.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use slis::Timestamp;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{AlertRuntime, Leadership, Leading, RETAIN_LOG, SloSource};
use crate::deliver::{BATCH, Deliverer};
use crate::store::{AlertStore, Pending};

/// How often the deliverer looks at the outbox when nothing wakes it, and a standby whether it
/// leads yet.
const DELIVER_IDLE: Duration = Duration::from_secs(1);

/// How often old notifications and alert history are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

impl AlertRuntime<AlertStore> {
    /// Spawns the evaluator and the deliverer on `tasks`, reading `source` and timing with
    /// `clock`. With a shared `leader` both run only while this instance holds the evaluator
    /// lock: a standby tries to take it every `eval_interval / 2` (so it takes over within two
    /// eval intervals of the leader's death), reads the other instances' windows and the stored
    /// alert state each `eval_interval`, and restores the alert state when it becomes leader, so
    /// nothing pages again. Alone it always leads.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn<W, L>(
        self: Arc<Self>,
        source: W,
        mut leader: L,
        clock: fn() -> Timestamp,
        eval_interval: Duration,
        give_up_after: Duration,
        stop: CancellationToken,
        tasks: &mut JoinSet<std::io::Result<()>>,
    ) where
        W: SloSource + Send + Sync + 'static,
        L: Leadership + Send + 'static,
    {
        let runtime = self;
        let leading = Arc::new(AtomicBool::new(leader.leads()));
        tasks.spawn({
            let runtime = runtime.clone();
            let stop = stop.clone();
            let leading = leading.clone();
            async move {
                let tick = if leader.shared() {
                    eval_interval / 2
                } else {
                    eval_interval
                };
                let mut interval = tokio::time::interval(tick);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut pending = Pending::default();
                let mut pruned_at = Timestamp::EPOCH;
                let mut last_cycle: Option<Instant> = None;
                loop {
                    let woken = tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = interval.tick() => false,
                        _ = runtime.relayout.notified() => true,
                    };
                    // Alone there is nothing to read again: the loop keeps its pace.
                    if woken && !source.merges_others() {
                        continue;
                    }
                    let state = leader.poll().await;
                    leading.store(state.leads(), Ordering::SeqCst);
                    match state {
                        Leading::Became => {
                            // What the previous leader stored: alerts, groups (what each receiver
                            // was told), silences. The outbox ids it queued are idempotent.
                            pending = Pending::default();
                            runtime.sync_from_store().await;
                            last_cycle = None;
                        }
                        // Writes the old leadership could not store are the new leader's to redo.
                        Leading::Lost => pending = Pending::default(),
                        _ => {}
                    }
                    // A cycle every eval_interval (ticks are half of it when competing), and at
                    // once after a reload.
                    if !woken && last_cycle.is_some_and(|t| t.elapsed() + tick / 2 < eval_interval) {
                        continue;
                    }
                    last_cycle = Some(Instant::now());
                    let now = clock();
                    if !state.leads() {
                        if source.merges_others() {
                            let _config = runtime.reconfig.read().await;
                            source.refresh_others(now).await;
                        }
                        runtime.sync_from_store().await;
                        continue;
                    }
                    runtime.cycle(&source, &mut pending, now).await;
                    // Hourly: the notification log and alert history keep 90 days.
                    if now >= pruned_at + PRUNE_EVERY {
                        pruned_at = now;
                        match runtime.store.prune(now - RETAIN_LOG).await {
                            Ok(n) if n > 0 => tracing::info!(rows = n, "pruned old notifications and alert history"),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "cannot prune the notification log"),
                        }
                    }
                }
                // A last try at what the database still owes, then hand the lead over.
                if leader.leads()
                    && let Err(e) = runtime.store.commit(&mut pending, clock()).await
                {
                    tracing::error!(error = %e, pending = pending.len(), "stopped with alert state not stored");
                }
                leading.store(false, Ordering::SeqCst);
                leader.resign().await;
                Ok(())
            }
        });
        tasks.spawn(async move {
            loop {
                if !leading.load(Ordering::SeqCst) {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(DELIVER_IDLE) => continue,
                    }
                }
                // The notifiers of the config in force (a reload may have changed them).
                let deliverer = Deliverer {
                    store: runtime.store.clone(),
                    notifiers: HashMap::clone(&runtime.notifiers.read().expect("notifiers lock poisoned")),
                    metrics: runtime.metrics.clone(),
                    give_up_after,
                };
                match deliverer.run_once(clock()).await {
                    // A full batch: there may be more due now.
                    Ok(n) if n as i64 >= BATCH => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot read the outbox; will retry"),
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = runtime.wake.notified() => {}
                    _ = tokio::time::sleep(DELIVER_IDLE) => {}
                }
            }
            Ok(())
        });
    }
}
