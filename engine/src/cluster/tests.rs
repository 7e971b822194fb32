//! Advisory locks against the real PostgreSQL (issue 7).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::*;
use crate::store::testing::Databases;

const POLL: Duration = Duration::from_millis(200);

/// Waits until the owned set equals `want`, at most `within`; returns how long it took.
async fn owns(rx: &mut watch::Receiver<BTreeSet<u32>>, want: &[u32], within: Duration) -> Duration {
    let want: BTreeSet<u32> = want.iter().copied().collect();
    let started = Instant::now();
    let reached = tokio::time::timeout(within, rx.wait_for(|s| *s == want)).await.is_ok();
    assert!(reached, "owned {:?}, expected {want:?} within {within:?}", *rx.borrow());
    started.elapsed()
}

#[test]
fn lock_keys_are_stable_and_distinct() {
    // FNV-1a 64 of the name: the same in every instance and version.
    assert_eq!(lock_key(""), 0xcbf2_9ce4_8422_2325_u64 as i64);
    assert_eq!(lock_key("a"), 0xaf63_dc4c_8601_ec8c_u64 as i64);
    assert_ne!(lock_key(EVALUATOR_LOCK), lock_key("tracebudget-evaluatoR"));
    assert_ne!(stream_key("TRACEBUDGET_SPANS"), stream_key("OTHER"));
}

/// Two holders on one database, preferring halves of four partitions: each takes its own; when
/// one session ends the other takes every partition within one poll, and a holder that comes
/// back finds them held (no stealing).
#[tokio::test]
async fn a_dead_holders_partitions_are_taken_within_one_poll() {
    let dbs = Databases::new("partitions").await;
    let [_, url] = dbs.urls();
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let metrics_b = ClusterMetrics::default();
    let (a, task_a) =
        PartitionLocks::spawn(&url, "S", 4, &[0, 1], POLL, ClusterMetrics::default(), stop_a.clone()).unwrap();
    let (b, task_b) = PartitionLocks::spawn(&url, "S", 4, &[2, 3], POLL, metrics_b.clone(), stop_b.clone()).unwrap();
    let (mut ra, mut rb) = (a.subscribe(), b.subscribe());
    owns(&mut ra, &[0, 1], Duration::from_secs(5)).await;
    owns(&mut rb, &[2, 3], Duration::from_secs(5)).await;
    // Several polls later nothing moved: every partition is held.
    tokio::time::sleep(3 * POLL).await;
    assert_eq!(*ra.borrow(), BTreeSet::from([0, 1]));
    assert_eq!(*rb.borrow(), BTreeSet::from([2, 3]));
    assert_eq!(metrics_b.partitions_owned.get(), 2);

    // A's connection closes: B takes 0 and 1 at its next poll.
    stop_a.cancel();
    task_a.await.unwrap();
    assert!(ra.borrow().is_empty());
    let took = owns(&mut rb, &[0, 1, 2, 3], 2 * POLL + QUERY_TIMEOUT).await;
    assert!(took <= 2 * POLL, "took {took:?}");
    assert_eq!(metrics_b.partitions_owned.get(), 4);

    // A comes back preferring 0 and 1: they stay with B.
    let stop_a2 = CancellationToken::new();
    let (a2, task_a2) =
        PartitionLocks::spawn(&url, "S", 4, &[0, 1], POLL, ClusterMetrics::default(), stop_a2.clone()).unwrap();
    tokio::time::sleep(3 * POLL).await;
    assert!(a2.subscribe().borrow().is_empty());

    // B's session is killed by the server (as when its instance dies): A takes all four.
    let admin = crate::store::Db::open(&url).await.unwrap();
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT DISTINCT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = 2 AND objsubid = 2 \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(&admin.pool)
    .await
    .unwrap();
    assert_eq!(pids.len(), 1);
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pids[0])
        .execute(&admin.pool)
        .await
        .unwrap();
    admin.close().await;
    // B reconnects at its next poll and competes with A: between them they hold every
    // partition, each once, and it stays so.
    let mut ra2 = a2.subscribe();
    let whole = |ra: &watch::Receiver<BTreeSet<u32>>, rb: &watch::Receiver<BTreeSet<u32>>| {
        let (x, y) = (ra.borrow().clone(), rb.borrow().clone());
        x.is_disjoint(&y) && x.union(&y).count() == 4
    };
    // B notices at its next poll: until then it still reports what it held.
    tokio::time::sleep(2 * POLL).await;
    let started = Instant::now();
    while !(whole(&ra2, &rb) && ra2.borrow().len() + rb.borrow().len() == 4) {
        assert!(
            started.elapsed() < 2 * POLL + QUERY_TIMEOUT,
            "{:?} {:?}",
            *ra2.borrow(),
            *rb.borrow()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let settled = (ra2.borrow_and_update().clone(), rb.borrow_and_update().clone());
    tokio::time::sleep(3 * POLL).await;
    assert_eq!((ra2.borrow().clone(), rb.borrow().clone()), settled);

    stop_a2.cancel();
    stop_b.cancel();
    task_a2.await.unwrap();
    task_b.await.unwrap();
    dbs.drop().await;
}

/// One leader at a time: the first to try leads, the other stands by; when the leader's session
/// ends the standby takes over at its next attempt, and the old leader notices it lost the lock.
#[tokio::test]
async fn one_leader_and_a_standby_that_takes_over() {
    let dbs = Databases::new("leader").await;
    let [_, url] = dbs.urls();
    let (ma, mb) = (ClusterMetrics::default(), ClusterMetrics::default());
    let mut a = Leader::postgres(&url, ma.clone()).unwrap();
    let mut b = Leader::postgres(&url, mb.clone()).unwrap();
    assert_eq!(a.poll().await, Leading::Became);
    assert_eq!(b.poll().await, Leading::Standby);
    assert_eq!(a.poll().await, Leading::Still);
    assert_eq!(b.poll().await, Leading::Standby);
    assert_eq!((ma.leader.get(), mb.leader.get()), (1, 0));

    // The server ends A's session (its instance died): B leads at its next attempt.
    let admin = crate::store::Db::open(&url).await.unwrap();
    let pid: i32 = sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&admin.pool)
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&admin.pool)
        .await
        .unwrap();
    admin.close().await;
    // The backend exits just after pg_terminate_backend answers.
    assert_eq!(poll_until(&mut b, Leading::Became).await, Leading::Became);
    assert_eq!(a.poll().await, Leading::Lost);
    assert_eq!(a.poll().await, Leading::Standby);
    assert_eq!((ma.leader.get(), mb.leader.get()), (0, 1));
    let changes = |m: &ClusterMetrics, to| m.leadership_changes.get_or_create(&ToLabels { to }).get();
    assert_eq!((changes(&ma, "leader"), changes(&ma, "standby")), (1, 1));
    assert_eq!((changes(&mb, "leader"), changes(&mb, "standby")), (1, 0));

    // A resignation at shutdown frees the lock at once.
    b.resign().await;
    assert_eq!(poll_until(&mut a, Leading::Became).await, Leading::Became);
    let mut sqlite = Leader::always(ClusterMetrics::default());
    assert!(!sqlite.shared());
    assert_eq!(sqlite.poll().await, Leading::Still);
    a.resign().await;
    dbs.drop().await;
}

/// Polls until `want` (a standby retries), at most 2 s.
async fn poll_until(l: &mut Leader, want: Leading) -> Leading {
    let started = Instant::now();
    loop {
        let got = l.poll().await;
        if got == want || started.elapsed() > Duration::from_secs(2) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
