//! `[jetstream]`: where the span stream is and how it is consumed. Absent: no JetStream.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;
use slis::config::{ConfigError, HumanDuration};

/// NATS server URLs (comma-separated) as they may be shown in logs and errors: each through
/// [`slis::config::redact_url`] (a user, password or token in a URL reads `<redacted>`).
pub fn shown_url(url: &str) -> String {
    url.split(',')
        .map(|u| slis::config::redact_url(u.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

/// `[jetstream]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JetStreamConfig {
    /// NATS server URL (`nats://host:4222`; several comma-separated).
    pub url: String,
    /// The stream, created (file storage, subjects `<subject_prefix>.>`) when missing.
    pub stream: String,
    /// Partition `k` is subject `<subject_prefix>.<k>`.
    pub subject_prefix: String,
    /// Number of partitions; a trace's partition is its id's first 8 bytes (big-endian) modulo
    /// this. Changing it re-partitions traces: drain the stream first.
    pub partitions: u32,
    /// Partitions this instance consumes when no cluster hands them out (default: all).
    pub consume: Option<Vec<u32>>,
    /// Durable pull consumer of partition `k`: `<consumer_prefix>-p<k>`.
    pub consumer_prefix: String,
    /// Messages asked for per pull.
    pub batch: usize,
    /// Bytes asked for per pull, per partition: what the server may push to this instance at
    /// once is `batch_bytes` × partitions consumed, which must stay below the server's
    /// `max_pending` (64 MiB by default) or the server drops the connection as a slow consumer.
    /// At least the server's `max_payload` (1 MiB by default).
    pub batch_bytes: usize,
    /// How long the server waits for an ack before redelivering (a redelivery of something
    /// already counted is skipped). Must exceed `[storage] flush_interval` by a margin.
    pub ack_wait: HumanDuration,
    /// Messages delivered and not yet acked, per partition, before the server pauses delivery.
    pub max_ack_pending: i64,
    /// How long JetStream remembers a published message id (`Nats-Msg-Id`), so a client's retry
    /// through `tracebudget publish` is stored once. Used when the stream is created.
    pub duplicate_window: HumanDuration,
}

impl Default for JetStreamConfig {
    fn default() -> Self {
        JetStreamConfig {
            url: "nats://127.0.0.1:4222".to_owned(),
            stream: "TRACEBUDGET_SPANS".to_owned(),
            subject_prefix: "tracebudget.spans".to_owned(),
            partitions: 8,
            consume: None,
            consumer_prefix: "tracebudget".to_owned(),
            batch: 500,
            batch_bytes: 4 << 20,
            ack_wait: Duration::from_secs(60).into(),
            max_ack_pending: 20_000,
            duplicate_window: Duration::from_secs(120).into(),
        }
    }
}

impl JetStreamConfig {
    /// Checks what serde cannot, given the flush interval acks wait for.
    pub fn validate(&self, flush_interval: Duration) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut bad = |m: String| errors.push(ConfigError::unplaced(m));
        if self.partitions == 0 || self.partitions > 4_096 {
            bad(format!(
                "jetstream partitions must be 1 to 4096, not {}",
                self.partitions
            ));
        }
        if self.batch == 0 {
            bad("jetstream batch must be at least 1".to_owned());
        }
        if self.batch_bytes < 1 << 20 {
            bad(format!(
                "jetstream batch_bytes must be at least 1048576 (NATS' default max_payload), not {}",
                self.batch_bytes
            ));
        }
        if self.max_ack_pending < 1 {
            bad(format!(
                "jetstream max_ack_pending must be at least 1, not {}",
                self.max_ack_pending
            ));
        }
        if self.ack_wait.0 < flush_interval * 2 {
            bad(format!(
                "jetstream ack_wait ({}) must be at least twice [storage] flush_interval ({}): messages are acked after the flush that stores them",
                slis::duration::format_duration(self.ack_wait.0),
                slis::duration::format_duration(flush_interval)
            ));
        }
        for (what, v) in [
            ("stream", &self.stream),
            ("subject_prefix", &self.subject_prefix),
            ("consumer_prefix", &self.consumer_prefix),
        ] {
            if v.is_empty() || v.contains([' ', '*', '>']) || (what == "stream" && v.contains('.')) {
                bad(format!("jetstream {what} {v:?} is not a valid NATS name"));
            }
        }
        if let Some(list) = &self.consume {
            for p in list {
                if *p >= self.partitions {
                    bad(format!(
                        "jetstream consume lists partition {p}, but there are {} (0 to {})",
                        self.partitions,
                        self.partitions.saturating_sub(1)
                    ));
                }
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// The partitions consumed without a cluster: `consume`, else all.
    pub fn consumed(&self) -> BTreeSet<u32> {
        match &self.consume {
            Some(list) => list.iter().copied().collect(),
            None => (0..self.partitions).collect(),
        }
    }

    pub fn subject(&self, partition: u32) -> String {
        format!("{}.{partition}", self.subject_prefix)
    }

    pub fn durable(&self, partition: u32) -> String {
        format!("{}-p{partition}", self.consumer_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18: `nats://TOKEN@host` and `nats://user:password@host` were logged as written.
    #[test]
    fn shown_urls_carry_no_credentials() {
        assert_eq!(
            shown_url("nats://s3cret@a:4222, nats://u:s3cret@b:4222,nats://c:4222"),
            "nats://<redacted>@a:4222,nats://<redacted>@b:4222,nats://c:4222"
        );
    }

    #[test]
    fn validation_names_every_bad_value() {
        let five = Duration::from_secs(5);
        assert_eq!(JetStreamConfig::default().validate(five), Ok(()));
        type Change = fn(&mut JetStreamConfig);
        let cases: [(Change, &str); 7] = [
            (|c| c.partitions = 0, "jetstream partitions must be 1 to 4096, not 0"),
            (|c| c.batch = 0, "jetstream batch must be at least 1"),
            (
                |c| c.batch_bytes = 65_536,
                "jetstream batch_bytes must be at least 1048576 (NATS' default max_payload), not 65536",
            ),
            (
                |c| c.max_ack_pending = 0,
                "jetstream max_ack_pending must be at least 1, not 0",
            ),
            (
                |c| c.ack_wait = Duration::from_secs(9).into(),
                "jetstream ack_wait (9s) must be at least twice [storage] flush_interval (5s): messages are acked after the flush that stores them",
            ),
            (
                |c| c.stream = "a.b".into(),
                "jetstream stream \"a.b\" is not a valid NATS name",
            ),
            (
                |c| c.consume = Some(vec![1, 8]),
                "jetstream consume lists partition 8, but there are 8 (0 to 7)",
            ),
        ];
        for (change, want) in cases {
            let mut c = JetStreamConfig::default();
            change(&mut c);
            let got: Vec<String> = c.validate(five).unwrap_err().into_iter().map(|e| e.message).collect();
            assert_eq!(got, [want]);
        }
        let c = JetStreamConfig {
            consume: Some(vec![3, 1]),
            ..Default::default()
        };
        assert_eq!(c.consumed().into_iter().collect::<Vec<_>>(), [1, 3]);
        assert_eq!(JetStreamConfig::default().consumed().len(), 8);
        assert_eq!(
            (c.subject(3), c.durable(3)),
            ("tracebudget.spans.3".to_owned(), "tracebudget-p3".to_owned())
        );
    }
}
