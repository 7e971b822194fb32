//! The engine's config sections: `[[journeys]]`, `[ingest]` and `[storage]`.
//! Every field documents itself; unknown keys are errors.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use serde::Deserialize;
use slis::config::{ByteSize, ConfigError, HumanDuration, Secret};
use slis::journey::{AttrMatcher, Journey, Journeys, RootMatcher};
use toml::Spanned;

use crate::listen::{Timeout, TlsConfig};

/// `[[journeys]]`: a named kind of request, selected by its root span.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JourneyConfig {
    /// Unique name, referenced by SLOs and carried as the `journey` label of alerts.
    pub name: Spanned<String>,
    /// `service.name` of the root span.
    pub service: Option<String>,
    /// Exact span name of the root span, e.g. `"POST /api/checkout"`.
    pub span_name: Option<String>,
    /// The root span's `http.route` attribute, e.g. `"/api/checkout"`.
    pub http_route: Option<String>,
    /// The root span's HTTP method (`http.request.method`, or the older `http.method`).
    pub http_method: Option<String>,
    /// More matchers on root span attributes, e.g. `["deployment.environment = prod"]`.
    #[serde(default)]
    pub attributes: Vec<Spanned<String>>,
    /// A root span with status ERROR counts as an error.
    #[serde(default = "yes")]
    pub status_error: bool,
    /// Matchers that make a root span an error too, e.g. `["http.response.status_code >= 500"]`.
    #[serde(default)]
    pub error_when: Vec<Spanned<String>>,
    /// Services that must all take part in a complete trace (completeness SLI).
    #[serde(default)]
    pub expected_services: Vec<String>,
    /// Labels copied onto every alert of this journey's SLOs, e.g. `{ team = "payments" }`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// Validates the journeys into the domain list, collecting every error.
pub fn build_journeys(configs: Vec<JourneyConfig>) -> Result<Journeys, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    let mut journeys = Vec::with_capacity(configs.len());
    for c in configs {
        if !seen.insert(c.name.get_ref().clone()) {
            errors.push(ConfigError::at(
                c.name.span(),
                format!("duplicate journey name {:?}", c.name.get_ref()),
            ));
        }
        if c.service.is_none() && c.span_name.is_none() && c.http_route.is_none() && c.attributes.is_empty() {
            errors.push(ConfigError::at(
                c.name.span(),
                format!(
                    "journey {:?} has no root matcher: set service, span_name, http_route or attributes",
                    c.name.get_ref()
                ),
            ));
        }
        let mut matchers = |list: &[Spanned<String>]| -> Vec<AttrMatcher> {
            list.iter()
                .filter_map(|m| {
                    AttrMatcher::parse(m.get_ref())
                        .map_err(|e| errors.push(ConfigError::at(m.span(), e.to_string())))
                        .ok()
                })
                .collect()
        };
        let attributes = matchers(&c.attributes);
        let error_rules = matchers(&c.error_when);
        journeys.push(Journey {
            name: c.name.into_inner(),
            root: RootMatcher {
                service: c.service,
                span_name: c.span_name,
                http_route: c.http_route,
                http_method: c.http_method,
                attributes,
            },
            status_error: c.status_error,
            error_rules,
            expected_services: c.expected_services.into_iter().map(Into::into).collect(),
            labels: c.labels.into_iter().collect(),
        });
    }
    if errors.is_empty() {
        Ok(Journeys(journeys))
    } else {
        Err(errors)
    }
}

/// `[ingest]`: receivers and the trace assembler.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// OTLP/gRPC listen address (TraceService/Export).
    pub otlp_grpc: Option<SocketAddr>,
    /// OTLP/HTTP listen address (`POST /v1/traces`, protobuf and JSON).
    pub otlp_http: Option<SocketAddr>,
    /// Zipkin v2 listen address (`POST /api/v2/spans`).
    pub zipkin: Option<SocketAddr>,
    /// A trace closes this long after its last span; completeness is judged then.
    pub trace_idle: HumanDuration,
    /// Spans held by the trace assembler at most; past it the oldest open traces are evicted.
    pub max_buffered_spans: usize,
    /// Largest accepted request body, after decompression.
    pub max_body_size: ByteSize,
    /// Spans ending further than this in the future (by the engine's clock) are rejected.
    pub max_future_skew: HumanDuration,
    /// Spans ending longer ago than this are rejected as too old.
    pub max_span_age: HumanDuration,
    /// `[ingest.tls]`: TLS (optionally mutual) on all three receivers; absent: plain TCP.
    pub tls: Option<TlsConfig>,
    /// Bearer token the receivers require (`Authorization: Bearer …`, gRPC metadata
    /// `authorization`), or a list of tokens any of which is accepted (to rotate one without a
    /// gap). Absent: no token needed. Never logged.
    pub auth_token: Option<AuthTokens>,
    /// OTLP/HTTP and Zipkin: a request head (and a new connection's first request) must
    /// arrive within this; an idle keep-alive connection is closed after it.
    pub header_read_timeout: Timeout,
    /// Every receiver: a request body must be complete this long after its head arrived, or it
    /// is refused (408, gRPC DEADLINE_EXCEEDED) and its connection closed — one deadline for the
    /// whole body, however slowly the bytes trickle in.
    pub body_read_timeout: Timeout,
    /// Open connections per receiver at most (TLS handshakes included); one more is closed as
    /// soon as it is accepted, counted in `tracebudget_connections_refused_total`.
    pub max_connections: NonZeroUsize,
    /// Bytes of request bodies all receivers hold at once at most, taken as they arrive and
    /// given back when the request is answered; a request whose bytes do not fit is refused
    /// (429 with `Retry-After`, gRPC RESOURCE_EXHAUSTED). At least `max_body_size`.
    pub max_body_bytes_in_flight: ByteSize,
}

/// `[ingest] auth_token`: one token or a list of them, none empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "OneOrMany")]
pub struct AuthTokens(pub Vec<Secret>);

#[derive(Deserialize)]
#[serde(untagged, expecting = "a token (a string) or a list of tokens")]
enum OneOrMany {
    One(Secret),
    Many(Vec<Secret>),
}

impl TryFrom<OneOrMany> for AuthTokens {
    type Error = &'static str;
    fn try_from(v: OneOrMany) -> Result<Self, Self::Error> {
        let tokens = match v {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(ts) => ts,
        };
        if tokens.is_empty() {
            return Err("auth_token is an empty list: remove it to need no token");
        }
        if tokens.iter().any(|t| t.expose().is_empty()) {
            return Err("auth_token holds an empty token");
        }
        if tokens
            .iter()
            .any(|t| t.expose().bytes().any(|b| !(0x21..=0x7e).contains(&b)))
        {
            return Err(
                "auth_token holds a token with a space or a character that is not visible ASCII: an HTTP header cannot carry it",
            );
        }
        Ok(AuthTokens(tokens))
    }
}

impl AuthTokens {
    /// Whether the `Authorization` value is `Bearer <one of the tokens>`. Every token is compared,
    /// each in constant time.
    pub fn admit(&self, authorization: Option<&[u8]>) -> bool {
        let Some(token) = authorization.and_then(|v| v.strip_prefix(b"Bearer ")) else {
            return false;
        };
        self.0.iter().fold(false, |ok, t| ok | t.matches(token))
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            otlp_grpc: Some(SocketAddr::from(([0, 0, 0, 0], 4317))),
            otlp_http: Some(SocketAddr::from(([0, 0, 0, 0], 4318))),
            zipkin: Some(SocketAddr::from(([0, 0, 0, 0], 9411))),
            trace_idle: Duration::from_secs(30).into(),
            max_buffered_spans: 1_000_000,
            max_body_size: ByteSize(16 << 20),
            max_future_skew: Duration::from_secs(5 * 60).into(),
            max_span_age: Duration::from_secs(3_600).into(),
            tls: None,
            auth_token: None,
            header_read_timeout: Timeout::secs(10),
            body_read_timeout: Timeout::secs(30),
            max_connections: NonZeroUsize::new(1024).expect("not zero"),
            max_body_bytes_in_flight: ByteSize(256 << 20),
        }
    }
}

/// `[storage]`: where SLI buckets, alert state and the outbox live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sqlite://PATH` (embedded, created on first run) or `postgres://USER@HOST/DB`.
    pub url: StorageUrl,
    /// How often bucket deltas are written, in one transaction per batch.
    pub flush_interval: HumanDuration,
    /// Names this instance's rows when several `serve` instances share one PostgreSQL database
    /// (issue 7): each writes and restores only its own rows, and reads the others' to evaluate
    /// over all of them. Every instance needs a name of its own — two processes under one name
    /// would overwrite each other's rows, and nothing can detect that cheaply. `""` (the default)
    /// is a single instance. Letters, digits, `-`, `_`, `.`, at most 64; PostgreSQL only.
    pub instance: InstanceName,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            url: StorageUrl("sqlite://tracebudget.db".to_owned()),
            flush_interval: Duration::from_secs(5).into(),
            instance: InstanceName::default(),
        }
    }
}

/// A `sqlite:` or `postgres:` URL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct StorageUrl(pub String);

impl TryFrom<String> for StorageUrl {
    type Error = String;
    fn try_from(url: String) -> Result<Self, String> {
        if ["sqlite:", "postgres:", "postgresql:"]
            .iter()
            .any(|p| url.starts_with(p))
        {
            Ok(StorageUrl(url))
        } else {
            Err(format!("storage url {url:?} is neither sqlite://PATH nor postgres://…"))
        }
    }
}

/// `[storage] instance`: a name for this instance's rows (see [`StorageConfig::instance`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct InstanceName(pub String);

impl TryFrom<String> for InstanceName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        if name.len() > 64 {
            return Err(format!("instance name {name:?} is longer than 64 bytes"));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(format!(
                "instance name {name:?} holds {c:?}: use letters, digits, '-', '_' and '.'"
            ));
        }
        Ok(InstanceName(name))
    }
}

/// `[cluster]`: several `serve` instances on one PostgreSQL database (issue 7). Absent: this
/// instance still evaluates over every instance's rows on PostgreSQL and leads when it can take
/// the evaluator lock; the section tunes the partition locks of a JetStream stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The stream partitions this instance takes first; any partition nobody holds is taken
    /// too, after it stayed free for one `lock_poll` (so a starting instance gets its own first).
    pub partitions: Vec<u32>,
    /// How often free partitions are tried and held ones checked.
    pub lock_poll: HumanDuration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            partitions: Vec::new(),
            lock_poll: Duration::from_secs(5).into(),
        }
    }
}
