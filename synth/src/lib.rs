//! Deterministic, realistic OTLP traces for `tracebudget loadgen`, benchmarks and tests.
//!
//! This crate is the traffic generator, kept out of the stream consumer: the engine never depends
//! on it (only its tests and benchmarks do, as a dev-dependency), so nothing that synthesizes
//! traffic can reach a production pipeline. Besides the generator, [`pace`] schedules requests at
//! a target rate and [`incident`] scripts outages; both are pure maths over offsets from the start.
//!
//! A [`Shape`] lists journeys: where a request enters, which services a complete trace visits, how
//! many spans it has, how long its root takes and how often it fails, is slow or arrives incomplete.
//! A [`Generator`] turns a shape and a seed into `ExportTraceServiceRequest` batches of whole traces
//! and keeps an exact [`Tally`] per journey of what it produced: what a correct engine must count.
//! [`Shape::from_journeys`] builds a shape from the validated `[[journeys]]` of a config file and
//! checks that every synthesized root lands in its own journey and is judged as intended.
//!
//! **Invariant:** the generator never reads the system clock (every `now` is an argument) and is
//! deterministic: the same shape, seed and calls give equal requests.
//!
//! # What a trace looks like
//!
//! The services a trace visits are the root's service followed by the journey's
//! `expected_services` (without repeats). The root is a SERVER span at the entry service carrying
//! `http.request.method`, `http.route` and `http.response.status_code`. Every other service is
//! reached by one gRPC hop, a CLIENT span in the caller and a SERVER span in the callee: the entry
//! service calls the second service, which calls all the others (`frontend → checkout → {payment,
//! catalog}`). Spans beyond those `1 + 2 × (services − 1)` are spread over the services, deepest
//! first: the first in a service is an INTERNAL handler span under its SERVER span, later ones are
//! database CLIENT spans (PostgreSQL or Redis) under that handler. Spans carry about ten attributes
//! of mixed types with the semantic-convention keys real SDKs use. Every child lies within its
//! parent's time range; the root ends at `now`.
//!
//! A request groups the spans of all its traces by service, one `ResourceSpans` (with
//! `service.name` and the usual resource attributes) and one `ScopeSpans` per service, as an SDK
//! or a collector's batch would.
//!
//! # Faults, drawn independently per trace
//!
//! - **error**: the root gets status ERROR and `http.response.status_code` 500, 502, 503 or 504;
//!   the last hop's CLIENT and SERVER spans get status ERROR too (the cause).
//! - **slow**: the root lasts 1.05 to 3 times the journey's slow threshold. Roots not chosen to be
//!   slow are drawn from the lognormal latency distribution cut at the threshold (redrawn when above
//!   it), so the share of slow roots is the slow rate and nothing else.
//! - **incomplete**: either every span of one expected leaf service is dropped (the trace lacks
//!   that service) or one middle span is dropped (its children become orphans), half and half when
//!   both are possible. Both make the trace incomplete per DESIGN.md; the root is never dropped.
//!
//! # Tally semantics
//!
//! Counted per journey, per trace generated: `traces`, `spans` (spans actually emitted, so fewer
//! for incomplete traces), `errors` (roots made to fail, whatever their latency), `slow` (roots
//! whose duration is strictly above the journey's slow threshold, error or not: latency and error
//! are separate SLIs), `incomplete` (= `missing_service` + `orphaned`). A trace can be error, slow
//! and incomplete at once and then counts in each.

use std::collections::HashMap;
use std::ops::AddAssign;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind as OtlpKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatus;
use opentelemetry_proto::tonic::trace::v1::{self as otlp, ResourceSpans, ScopeSpans, SpanFlags, Status};
use rand::distr::weighted::WeightedIndex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use slis::journey::{AttrMatcher, Journeys, Op};
use slis::model::{AttrValue, Span, SpanId, SpanKind, StatusCode, TraceId};
use slis::time::Timestamp;

pub mod incident;
pub mod pace;

/// The 99th percentile of the standard normal distribution.
const Z99: f64 = 2.326_347_874_040_841;

/// The semantic-conventions schema the attributes follow.
const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.26.0";

/// Root latency: lognormal with this median and 99th percentile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latency {
    pub median: Duration,
    /// Must be above the median.
    pub p99: Duration,
}

impl Latency {
    /// The default for a journey judged against `threshold`: median `threshold / 8`, p99
    /// `threshold / 2`, so a root is slow only when made so.
    pub fn for_threshold(threshold: Duration) -> Latency {
        Latency {
            median: threshold / 8,
            p99: threshold / 2,
        }
    }

    /// In nanoseconds.
    fn distribution(&self) -> Result<LogNormal<f64>, String> {
        if self.median.is_zero() || self.p99 <= self.median {
            return Err(format!(
                "latency needs 0 < median < p99, got median {:?} and p99 {:?}",
                self.median, self.p99
            ));
        }
        let mu = (self.median.as_nanos() as f64).ln();
        let sigma = ((self.p99.as_nanos() as f64).ln() - mu) / Z99;
        LogNormal::new(mu, sigma).map_err(|e| format!("bad latency distribution: {e}"))
    }
}

/// Shares of traces that get each fault, in [0, 1], drawn independently per trace.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    pub error: f64,
    pub slow: f64,
    pub incomplete: f64,
}

/// One journey's traffic.
#[derive(Clone, Debug, PartialEq)]
pub struct JourneyShape {
    /// The journey's name (for tallies and messages).
    pub name: String,
    /// `service.name` of the root span, the entry service.
    pub service: String,
    pub span_name: String,
    /// `http.route` of the root span, e.g. `/api/checkout`.
    pub http_route: String,
    /// `http.request.method` of the root span, e.g. `POST`.
    pub http_method: String,
    /// More root attributes, e.g. what a journey's `key = value` matchers ask for.
    pub root_attributes: Vec<(String, AttrValue)>,
    /// Services a complete trace holds. The trace visits `service`, then these.
    pub expected_services: Vec<String>,
    /// Spans of a complete trace; at least `1 + 2 × (visited services − 1)`.
    pub spans_per_trace: usize,
    pub latency: Latency,
    /// A root lasting strictly longer than this is slow.
    pub slow_threshold: Duration,
    pub rates: Rates,
    /// Relative share of this journey in the traffic.
    pub weight: f64,
}

impl JourneyShape {
    /// The services a trace visits: the root's first, then the expected ones, without repeats.
    pub fn visited_services(&self) -> Vec<&str> {
        let mut visited = vec![self.service.as_str()];
        for s in &self.expected_services {
            if !visited.contains(&s.as_str()) {
                visited.push(s);
            }
        }
        visited
    }

    /// The fewest spans a trace visiting `services` services can have.
    pub fn min_spans(services: usize) -> usize {
        1 + 2 * services.saturating_sub(1)
    }
}

/// The traffic a [`Generator`] produces.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    pub journeys: Vec<JourneyShape>,
}

/// What [`Shape::from_journeys`] takes where a config journey says nothing.
#[derive(Clone, Debug)]
pub struct ShapeDefaults {
    /// Raised, per journey, to the minimum its services need.
    pub spans_per_trace: usize,
    /// `None`: [`Latency::for_threshold`] of each journey's slow threshold.
    pub latency: Option<Latency>,
    pub slow_threshold: Duration,
    /// Per-journey slow thresholds by journey name (e.g. from latency SLOs); others use
    /// `slow_threshold`.
    pub slow_thresholds: HashMap<String, Duration>,
    pub rates: Rates,
    /// Journey weights by name; others weigh 1.
    pub weights: HashMap<String, f64>,
}

impl Default for ShapeDefaults {
    fn default() -> Self {
        ShapeDefaults {
            spans_per_trace: 8,
            latency: None,
            slow_threshold: Duration::from_millis(800),
            slow_thresholds: HashMap::new(),
            rates: Rates::default(),
            weights: HashMap::new(),
        }
    }
}

/// Why a shape cannot be generated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShapeError {
    #[error("a shape needs at least one journey")]
    NoJourneys,
    #[error("journey weights must be finite, at least 0 and not all 0")]
    Weights,
    #[error("journey {journey:?}: {reason}")]
    Journey { journey: String, reason: String },
}

impl Shape {
    /// The shape of a config's journeys: each root has the journey's service, span name, route and
    /// method (defaults: the first expected service or the journey's name, `"{METHOD} {route}"`,
    /// `/{name}`, `GET`) and the values of its `key = value` attribute matchers.
    ///
    /// Refused when a synthesized root would not land in its own journey (another journey listed
    /// earlier takes it, or a matcher other than `=` cannot be satisfied), or when the journey's
    /// error judgement disagrees with the injection (an injected error is not an error, or a
    /// healthy root is).
    pub fn from_journeys(journeys: &Journeys, defaults: &ShapeDefaults) -> Result<Shape, ShapeError> {
        let mut shapes = Vec::with_capacity(journeys.0.len());
        for j in &journeys.0 {
            let fail = |reason: String| ShapeError::Journey {
                journey: j.name.clone(),
                reason,
            };
            let http_method = j.root.http_method.as_deref().unwrap_or("GET").to_ascii_uppercase();
            let http_route = j.root.http_route.clone().unwrap_or_else(|| format!("/{}", j.name));
            let span_name = j
                .root
                .span_name
                .clone()
                .unwrap_or_else(|| format!("{http_method} {http_route}"));
            let service = j
                .root
                .service
                .clone()
                .or_else(|| j.expected_services.first().map(|s| s.to_string()))
                .unwrap_or_else(|| j.name.clone());
            let root_attributes = j
                .root
                .attributes
                .iter()
                .map(|m| {
                    satisfy(m).ok_or_else(|| {
                        fail(format!(
                            "cannot synthesize a root span for matcher `{m}`: only `key = value` matchers can be"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let slow_threshold = defaults
                .slow_thresholds
                .get(&j.name)
                .copied()
                .unwrap_or(defaults.slow_threshold);
            let mut shape = JourneyShape {
                name: j.name.clone(),
                service,
                span_name,
                http_route,
                http_method,
                root_attributes,
                expected_services: j.expected_services.iter().map(|s| s.to_string()).collect(),
                spans_per_trace: 0,
                latency: defaults
                    .latency
                    .unwrap_or_else(|| Latency::for_threshold(slow_threshold)),
                slow_threshold,
                rates: defaults.rates,
                weight: defaults.weights.get(&j.name).copied().unwrap_or(1.0),
            };
            shape.spans_per_trace = defaults
                .spans_per_trace
                .max(JourneyShape::min_spans(shape.visited_services().len()));
            shapes.push(shape);
        }
        let shape = Shape { journeys: shapes };
        let generator = Generator::new(shape.clone(), 0)?;
        for (i, j) in journeys.0.iter().enumerate() {
            let fail = |reason: String| ShapeError::Journey {
                journey: j.name.clone(),
                reason,
            };
            for error in [false, true] {
                let root = generator.sample_root(i, error);
                match journeys.match_root(&root) {
                    Some(k) if k == i => {}
                    Some(k) => {
                        return Err(fail(format!(
                            "its synthesized root span {:?} belongs to journey {:?}, listed earlier",
                            &*root.name, journeys.0[k].name
                        )));
                    }
                    None => {
                        return Err(fail(format!(
                            "its synthesized root span {:?} does not match it",
                            &*root.name
                        )));
                    }
                }
                if j.is_error(&root) != error {
                    return Err(fail(if error {
                        "an injected error (status ERROR, http.response.status_code 5xx) is not an error by its rules"
                            .to_owned()
                    } else {
                        "a healthy root (status UNSET, http.response.status_code 200) is an error by its rules"
                            .to_owned()
                    }));
                }
            }
        }
        Ok(shape)
    }
}

/// A value satisfying a `key = value` matcher, read back from its display form.
fn satisfy(m: &AttrMatcher) -> Option<(String, AttrValue)> {
    if m.op != Op::Eq {
        return None;
    }
    let text = m.to_string();
    let raw = text.strip_prefix(&format!("{} = ", m.key))?;
    let value = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => AttrValue::Str(inner.replace("\\\"", "\"").replace("\\\\", "\\").into()),
        None => match raw.parse::<i64>() {
            Ok(i) => AttrValue::Int(i),
            Err(_) => AttrValue::Float(raw.parse().ok()?),
        },
    };
    m.matches_value(&value).then(|| (m.key.to_string(), value))
}

/// What a generator produced, per journey. See the module docs for the exact semantics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub traces: u64,
    /// Spans emitted (an incomplete trace has fewer).
    pub spans: u64,
    /// Roots with status ERROR and a 5xx status code, whatever their latency.
    pub errors: u64,
    /// Roots lasting strictly longer than the journey's slow threshold, error or not.
    pub slow: u64,
    /// Traces incomplete per DESIGN.md: `missing_service + orphaned`.
    pub incomplete: u64,
    /// Incomplete traces lacking every span of one expected service.
    pub missing_service: u64,
    /// Incomplete traces missing one middle span, so that a child is an orphan.
    pub orphaned: u64,
}

impl AddAssign<&Tally> for Tally {
    fn add_assign(&mut self, o: &Tally) {
        self.traces += o.traces;
        self.spans += o.spans;
        self.errors += o.errors;
        self.slow += o.slow;
        self.incomplete += o.incomplete;
        self.missing_service += o.missing_service;
        self.orphaned += o.orphaned;
    }
}

/// One request of whole traces and what it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub request: ExportTraceServiceRequest,
    pub traces: u64,
    pub spans: u64,
    /// Per journey (in shape order), this batch only.
    pub tally: Vec<Tally>,
}

/// Turns a [`Shape`] and a seed into batches of traces.
#[derive(Debug)]
pub struct Generator {
    shape: Shape,
    plans: Vec<Plan>,
    services: Vec<Service>,
    mix: WeightedIndex<f64>,
    rng: SmallRng,
    tally: Vec<Tally>,
    error_rate: Option<f64>,
}

impl Generator {
    pub fn new(shape: Shape, seed: u64) -> Result<Generator, ShapeError> {
        if shape.journeys.is_empty() {
            return Err(ShapeError::NoJourneys);
        }
        let mix = WeightedIndex::new(shape.journeys.iter().map(|j| j.weight)).map_err(|_| ShapeError::Weights)?;
        let mut services: Vec<Service> = Vec::new();
        let mut plans = Vec::with_capacity(shape.journeys.len());
        for j in &shape.journeys {
            let plan = Plan::new(j, &mut services).map_err(|reason| ShapeError::Journey {
                journey: j.name.clone(),
                reason,
            })?;
            plans.push(plan);
        }
        Ok(Generator {
            tally: vec![Tally::default(); shape.journeys.len()],
            shape,
            plans,
            services,
            mix,
            rng: SmallRng::seed_from_u64(seed),
            error_rate: None,
        })
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Replaces every journey's error rate (an incident) until set back to `None`. Clamped to [0, 1].
    pub fn set_error_rate(&mut self, rate: Option<f64>) {
        self.error_rate = rate.map(|r| if r.is_nan() { 0.0 } else { r.clamp(0.0, 1.0) });
    }

    /// Everything generated so far, per journey in shape order.
    pub fn tally(&self) -> &[Tally] {
        &self.tally
    }

    /// A request of whole traces ending at `now`: traces are added while it holds fewer than
    /// `min_spans` spans (so it exceeds that by less than one trace) and at most `max_traces`.
    pub fn batch(&mut self, now: Timestamp, min_spans: usize, max_traces: u64) -> Batch {
        let now = u64::try_from(now.unix_nanos()).unwrap_or(0);
        let mut out = Builder::new(self.services.len());
        let mut tally = vec![Tally::default(); self.plans.len()];
        let (mut traces, mut spans) = (0, 0);
        while (spans as usize) < min_spans.max(1) && traces < max_traces {
            let j = self.mix.sample(&mut self.rng);
            let plan = &self.plans[j];
            let mut rates = plan.rates;
            if let Some(r) = self.error_rate {
                rates.error = r;
            }
            let t = trace(plan, &self.services, rates, &mut self.rng, now, &mut out);
            traces += 1;
            spans += t.spans;
            tally[j] += &t;
            self.tally[j] += &t;
        }
        Batch {
            request: ExportTraceServiceRequest {
                resource_spans: out.resource_spans,
            },
            traces,
            spans,
            tally,
        }
    }

    /// The root span of a trace of `journey`, healthy or failed, as the engine would decode it.
    fn sample_root(&self, journey: usize, error: bool) -> Span {
        let mut out = Builder::new(self.services.len());
        let rates = Rates {
            error: if error { 1.0 } else { 0.0 },
            ..Rates::default()
        };
        let plan = &self.plans[journey];
        trace(
            plan,
            &self.services,
            rates,
            &mut SmallRng::seed_from_u64(0),
            1 << 60,
            &mut out,
        );
        let service = &self.services[plan.spans[0].service].name;
        let rs = out.resource_spans.iter().find(|rs| service_name(rs) == Some(service));
        let root = rs
            .and_then(|rs| rs.scope_spans[0].spans.iter().find(|s| s.parent_span_id.is_empty()))
            .expect("every trace has its root");
        to_slis(service, root)
    }
}

/// `service.name` of a resource.
pub fn service_name(rs: &ResourceSpans) -> Option<&str> {
    rs.resource
        .as_ref()?
        .attributes
        .iter()
        .find_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) if kv.key == "service.name" => Some(s.as_str()),
            _ => None,
        })
}

/// A span as the engine's model sees it: attributes of scalar types, weight 1.
fn to_slis(service: &str, s: &otlp::Span) -> Span {
    let id8 = |b: &[u8]| SpanId(b.try_into().unwrap_or_default());
    Span {
        trace_id: TraceId(s.trace_id.as_slice().try_into().unwrap_or_default()),
        span_id: id8(&s.span_id),
        parent_span_id: (!s.parent_span_id.is_empty()).then(|| id8(&s.parent_span_id)),
        service: service.into(),
        name: s.name.as_str().into(),
        kind: match OtlpKind::try_from(s.kind) {
            Ok(OtlpKind::Internal) => SpanKind::Internal,
            Ok(OtlpKind::Server) => SpanKind::Server,
            Ok(OtlpKind::Client) => SpanKind::Client,
            Ok(OtlpKind::Producer) => SpanKind::Producer,
            Ok(OtlpKind::Consumer) => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        },
        start: Timestamp::from_unix_nanos(s.start_time_unix_nano as i64),
        end: Timestamp::from_unix_nanos(s.end_time_unix_nano as i64),
        status: match s.status.as_ref().map(|st| OtlpStatus::try_from(st.code)) {
            Some(Ok(OtlpStatus::Error)) => StatusCode::Error,
            Some(Ok(OtlpStatus::Ok)) => StatusCode::Ok,
            _ => StatusCode::Unset,
        },
        attributes: s
            .attributes
            .iter()
            .filter_map(|kv| {
                let v = match kv.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(v) => AttrValue::Str(v.as_str().into()),
                    any_value::Value::IntValue(v) => AttrValue::Int(*v),
                    any_value::Value::DoubleValue(v) => AttrValue::Float(*v),
                    any_value::Value::BoolValue(v) => AttrValue::Bool(*v),
                    _ => return None,
                };
                Some((kv.key.as_str().into(), v))
            })
            .collect(),
        weight: 1,
    }
}

#[derive(Debug)]
struct Service {
    name: String,
    resource: Resource,
    scope: InstrumentationScope,
}

impl Service {
    fn new(name: &str, n: usize) -> Service {
        Service {
            name: name.to_owned(),
            resource: Resource {
                attributes: vec![
                    string("service.name", name),
                    string("service.namespace", "shop"),
                    string("service.version", "1.4.2"),
                    string(
                        "service.instance.id",
                        format!("{name}-{:08x}", (n as u32 + 1).wrapping_mul(2_654_435_761)),
                    ),
                    string("deployment.environment.name", "production"),
                    string("host.name", format!("{name}-{}", n % 3)),
                    string("telemetry.sdk.name", "opentelemetry"),
                    string("telemetry.sdk.language", "rust"),
                    string("telemetry.sdk.version", "0.31.0"),
                ],
                dropped_attributes_count: 0,
                entity_refs: Vec::new(),
            },
            scope: InstrumentationScope {
                name: format!("shop.{name}"),
                version: "1.4.2".to_owned(),
                attributes: Vec::new(),
                dropped_attributes_count: 0,
            },
        }
    }
}

/// What a span is in its trace; decides its dynamic attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Root,
    HopClient,
    HopServer,
    Internal,
    Db,
}

/// One span of a journey's trace template.
#[derive(Debug)]
struct SpanPlan {
    /// Index into the generator's services.
    service: usize,
    /// Earlier in the plan: parents come before their children.
    parent: Option<usize>,
    kind: OtlpKind,
    role: Role,
    name: String,
    /// The attributes every trace shares; the varying ones are added per trace.
    attributes: Vec<KeyValue>,
    /// This span lasts a share of its parent drawn uniformly from this range.
    share: (f64, f64),
    /// The parent runs in another process (a SERVER span under a CLIENT one).
    remote_parent: bool,
    /// Fails with the root: the last hop, the error's cause.
    error_path: bool,
}

/// A journey's trace template and what it needs to draw a trace.
#[derive(Debug)]
struct Plan {
    spans: Vec<SpanPlan>,
    latency: LogNormal<f64>,
    threshold_nanos: u64,
    rates: Rates,
    /// Services whose spans a missing-service fault may drop: expected leaves, never the root's.
    droppable_services: Vec<usize>,
    /// Spans whose loss orphans a child: they have a parent and a child.
    middle_spans: Vec<usize>,
}

impl Plan {
    fn new(j: &JourneyShape, services: &mut Vec<Service>) -> Result<Plan, String> {
        for (what, r) in [
            ("error", j.rates.error),
            ("slow", j.rates.slow),
            ("incomplete", j.rates.incomplete),
        ] {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("{what} rate must be within [0, 1], got {r}"));
            }
        }
        if j.slow_threshold.is_zero() {
            return Err("slow threshold must be above 0".to_owned());
        }
        let latency = j.latency.distribution()?;
        let visited = j.visited_services();
        let k = visited.len() - 1;
        let min = JourneyShape::min_spans(visited.len());
        if j.spans_per_trace < min {
            return Err(format!(
                "{} spans per trace cannot visit {} services: it needs at least {min}",
                j.spans_per_trace,
                visited.len()
            ));
        }
        let ids: Vec<usize> = visited
            .iter()
            .map(|name| {
                services.iter().position(|s| s.name == *name).unwrap_or_else(|| {
                    services.push(Service::new(name, services.len()));
                    services.len() - 1
                })
            })
            .collect();
        let method = pascal(&j.name);
        let mut spans = vec![SpanPlan {
            service: ids[0],
            parent: None,
            kind: OtlpKind::Server,
            role: Role::Root,
            name: j.span_name.clone(),
            attributes: root_attributes(j, visited[0]),
            share: (1.0, 1.0),
            remote_parent: false,
            error_path: false,
        }];
        // The SERVER span of each visited service.
        let mut server_of = vec![0];
        for i in 1..=k {
            let caller = if i == 1 { 0 } else { 1 };
            let callee = visited[i];
            let rpc_service = format!("shop.{}Service", pascal(callee));
            let name = format!("{rpc_service}/{method}");
            let rpc = [
                string("rpc.system", "grpc"),
                string("rpc.service", rpc_service.as_str()),
                string("rpc.method", method.as_str()),
                string("server.address", callee),
                int("server.port", 50051),
                string("network.transport", "tcp"),
            ];
            let mut client_attrs = rpc.to_vec();
            client_attrs.push(string("net.peer.name", callee));
            spans.push(SpanPlan {
                service: ids[caller],
                parent: Some(server_of[caller]),
                kind: OtlpKind::Client,
                role: Role::HopClient,
                name: name.clone(),
                attributes: client_attrs,
                share: (0.4, 0.85),
                remote_parent: false,
                error_path: i == k,
            });
            let mut server_attrs = rpc.to_vec();
            server_attrs.push(string("network.protocol.version", "2"));
            spans.push(SpanPlan {
                service: ids[i],
                parent: Some(spans.len() - 1),
                kind: OtlpKind::Server,
                role: Role::HopServer,
                name,
                attributes: server_attrs,
                share: (0.8, 0.97),
                remote_parent: true,
                error_path: i == k,
            });
            server_of.push(spans.len() - 1);
        }
        // The rest, deepest service first: a handler span, then database calls under it.
        let mut handler_of: Vec<Option<usize>> = vec![None; visited.len()];
        let mut db_calls = vec![0usize; visited.len()];
        for e in 0..j.spans_per_trace - min {
            let v = k - e % visited.len();
            let service = visited[v];
            match handler_of[v] {
                None => {
                    spans.push(SpanPlan {
                        service: ids[v],
                        parent: Some(server_of[v]),
                        kind: OtlpKind::Internal,
                        role: Role::Internal,
                        name: format!("handle {}", j.name),
                        attributes: vec![
                            string("code.function.name", format!("{service}::handlers::{}", j.name)),
                            string("code.file.path", format!("src/handlers/{}.rs", j.name)),
                            int("code.line.number", 40 + 17 * v as i64),
                            string("app.journey", j.name.as_str()),
                            string("app.tenant", "acme"),
                            boolean("app.feature.new_flow", v.is_multiple_of(2)),
                        ],
                        share: (0.5, 0.9),
                        remote_parent: false,
                        error_path: false,
                    });
                    handler_of[v] = Some(spans.len() - 1);
                }
                Some(handler) => {
                    let (name, attributes) = db_call(service, db_calls[v]);
                    db_calls[v] += 1;
                    spans.push(SpanPlan {
                        service: ids[v],
                        parent: Some(handler),
                        kind: OtlpKind::Client,
                        role: Role::Db,
                        name,
                        attributes,
                        share: (0.05, 0.3),
                        remote_parent: false,
                        error_path: false,
                    });
                }
            }
        }
        let callers = if k >= 2 { 2 } else { 1 };
        let droppable_services = (callers..=k).map(|v| ids[v]).collect();
        let middle_spans: Vec<usize> = (1..spans.len())
            .filter(|&i| spans.iter().any(|s| s.parent == Some(i)))
            .collect();
        let plan = Plan {
            spans,
            latency,
            threshold_nanos: u64::try_from(j.slow_threshold.as_nanos()).unwrap_or(u64::MAX),
            rates: j.rates,
            droppable_services,
            middle_spans,
        };
        if j.rates.incomplete > 0.0 && plan.droppable_services.is_empty() && plan.middle_spans.is_empty() {
            return Err(
                "cannot be made incomplete: it needs a second expected service or at least 3 spans per trace"
                    .to_owned(),
            );
        }
        Ok(plan)
    }
}

fn root_attributes(j: &JourneyShape, service: &str) -> Vec<KeyValue> {
    let mut attributes = vec![
        string("http.request.method", j.http_method.as_str()),
        string("http.route", j.http_route.as_str()),
        string("url.scheme", "https"),
        string("url.path", j.http_route.as_str()),
        string("server.address", format!("{service}.shop.example")),
        int("server.port", 443),
        string(
            "user_agent.original",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0",
        ),
    ];
    for (key, value) in &j.root_attributes {
        let value = match value {
            AttrValue::Str(s) => any_value::Value::StringValue(s.to_string()),
            AttrValue::Int(i) => any_value::Value::IntValue(*i),
            AttrValue::Float(f) => any_value::Value::DoubleValue(*f),
            AttrValue::Bool(b) => any_value::Value::BoolValue(*b),
        };
        attributes.retain(|kv| kv.key != *key);
        attributes.push(kv(key, value));
    }
    attributes
}

fn db_call(service: &str, n: usize) -> (String, Vec<KeyValue>) {
    if n.is_multiple_of(2) {
        let name = format!("SELECT {service}.items");
        let attributes = vec![
            string("db.system", "postgresql"),
            string("db.namespace", service),
            string("db.operation.name", "SELECT"),
            string("db.collection.name", "items"),
            string("db.query.text", "SELECT id, data FROM items WHERE id = $1"),
            string("server.address", "postgres.shop.internal"),
            int("server.port", 5432),
            string("net.peer.name", "postgres.shop.internal"),
        ];
        (name, attributes)
    } else {
        let attributes = vec![
            string("db.system", "redis"),
            string("db.namespace", "0"),
            string("db.operation.name", "GET"),
            string("db.query.text", format!("GET {service}:session:*")),
            string("server.address", "redis.shop.internal"),
            int("server.port", 6379),
            string("net.peer.name", "redis.shop.internal"),
            boolean("db.redis.cluster", false),
        ];
        ("GET".to_owned(), attributes)
    }
}

/// `checkout-v2` → `CheckoutV2`.
fn pascal(s: &str) -> String {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

fn string(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn int(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

fn boolean(key: &str, value: bool) -> KeyValue {
    kv(key, any_value::Value::BoolValue(value))
}

fn ip(rng: &mut SmallRng) -> String {
    format!(
        "10.{}.{}.{}",
        rng.random_range(0..=255u8),
        rng.random_range(0..=255u8),
        rng.random_range(1..=254u8)
    )
}

/// The attributes that vary per trace.
fn dynamic_attributes(role: Role, failed: bool, rng: &mut SmallRng, out: &mut Vec<KeyValue>) {
    let grpc_status = if failed { 14 } else { 0 }; // UNAVAILABLE
    match role {
        Role::Root => {
            let status = if failed {
                [500, 502, 503, 504][rng.random_range(0..4)]
            } else {
                200
            };
            out.push(int("http.response.status_code", status));
            out.push(string("client.address", ip(rng)));
            out.push(boolean("app.user.authenticated", rng.random_bool(0.8)));
        }
        Role::HopClient => {
            out.push(int("rpc.grpc.status_code", grpc_status));
            out.push(boolean("app.retry", rng.random_bool(0.02)));
        }
        Role::HopServer => {
            out.push(int("rpc.grpc.status_code", grpc_status));
            out.push(string("network.peer.address", ip(rng)));
        }
        Role::Internal => {
            out.push(int("app.items", rng.random_range(1..=20)));
            out.push(boolean("app.cache.hit", rng.random_bool(0.7)));
        }
        Role::Db => {
            out.push(int("db.response.returned_rows", rng.random_range(0..=50)));
            out.push(boolean("app.cache.hit", rng.random_bool(0.3)));
        }
    }
    out.push(int("thread.id", rng.random_range(1..=64)));
}

/// Spans grouped by service, one `ResourceSpans` each, in order of first appearance.
struct Builder {
    resource_spans: Vec<ResourceSpans>,
    slot: Vec<Option<usize>>,
}

impl Builder {
    fn new(services: usize) -> Builder {
        Builder {
            resource_spans: Vec::new(),
            slot: vec![None; services],
        }
    }

    fn push(&mut self, services: &[Service], service: usize, span: otlp::Span) {
        let at = *self.slot[service].get_or_insert_with(|| {
            let s = &services[service];
            self.resource_spans.push(ResourceSpans {
                resource: Some(s.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(s.scope.clone()),
                    spans: Vec::new(),
                    schema_url: SCHEMA_URL.to_owned(),
                }],
                schema_url: SCHEMA_URL.to_owned(),
            });
            self.resource_spans.len() - 1
        });
        self.resource_spans[at].scope_spans[0].spans.push(span);
    }
}

/// The root's duration in nanoseconds: above the threshold when `slow`, at most it otherwise.
fn root_latency(plan: &Plan, slow: bool, rng: &mut SmallRng) -> u64 {
    let threshold = plan.threshold_nanos;
    if slow {
        let d = threshold as f64 * rng.random_range(1.05..3.0);
        return (d as u64).max(threshold.saturating_add(1));
    }
    for _ in 0..16 {
        let d = plan.latency.sample(rng);
        if d <= threshold as f64 {
            return (d as u64).clamp(1_000.min(threshold), threshold);
        }
    }
    threshold
}

/// Draws one trace of `plan` ending at `now` (ns) into `out` and says what it was.
fn trace(plan: &Plan, services: &[Service], rates: Rates, rng: &mut SmallRng, now: u64, out: &mut Builder) -> Tally {
    let error = rng.random_bool(rates.error);
    let slow = rng.random_bool(rates.slow);
    let incomplete =
        rng.random_bool(rates.incomplete) && !(plan.droppable_services.is_empty() && plan.middle_spans.is_empty());
    let latency = root_latency(plan, slow, rng);
    let (mut dropped_service, mut dropped_span) = (None, None);
    if incomplete {
        let by_service = !plan.droppable_services.is_empty() && (plan.middle_spans.is_empty() || rng.random_bool(0.5));
        if by_service {
            dropped_service = Some(plan.droppable_services[rng.random_range(0..plan.droppable_services.len())]);
        } else {
            dropped_span = Some(plan.middle_spans[rng.random_range(0..plan.middle_spans.len())]);
        }
    }

    let trace_id = loop {
        let id: u128 = rng.random();
        if id != 0 {
            break id.to_be_bytes();
        }
    };
    let n = plan.spans.len();
    let mut ids: Vec<[u8; 8]> = Vec::with_capacity(n);
    while ids.len() < n {
        let id = rng.random::<u64>().to_be_bytes();
        if id != [0; 8] && !ids.contains(&id) {
            ids.push(id);
        }
    }
    let mut times: Vec<(u64, u64)> = Vec::with_capacity(n);
    times.push((now.saturating_sub(latency), now));
    for sp in &plan.spans[1..] {
        let (start, end) = times[sp.parent.expect("only the root has no parent")];
        let d = end - start;
        let dur = ((d as f64 * rng.random_range(sp.share.0..sp.share.1)) as u64).min(d);
        let s = start + rng.random_range(0..=d - dur);
        times.push((s, s + dur));
    }

    let mut spans = 0;
    for (i, sp) in plan.spans.iter().enumerate() {
        if dropped_span == Some(i) || dropped_service == Some(sp.service) {
            continue;
        }
        let failed = error && (sp.role == Role::Root || sp.error_path);
        let mut attributes = Vec::with_capacity(sp.attributes.len() + 3);
        attributes.extend_from_slice(&sp.attributes);
        dynamic_attributes(sp.role, failed, rng, &mut attributes);
        let remote = if sp.remote_parent {
            SpanFlags::ContextIsRemoteMask as u32
        } else {
            0
        };
        let span = otlp::Span {
            trace_id: trace_id.to_vec(),
            span_id: ids[i].to_vec(),
            trace_state: String::new(),
            parent_span_id: sp.parent.map(|p| ids[p].to_vec()).unwrap_or_default(),
            flags: 0x01 | SpanFlags::ContextHasIsRemoteMask as u32 | remote, // sampled
            name: sp.name.clone(),
            kind: sp.kind as i32,
            start_time_unix_nano: times[i].0,
            end_time_unix_nano: times[i].1,
            attributes,
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status: failed.then(|| Status {
                message: if sp.role == Role::Root {
                    String::new()
                } else {
                    "upstream unavailable".to_owned()
                },
                code: OtlpStatus::Error as i32,
            }),
        };
        out.push(services, sp.service, span);
        spans += 1;
    }
    Tally {
        traces: 1,
        spans,
        errors: u64::from(error),
        slow: u64::from(latency > plan.threshold_nanos),
        incomplete: u64::from(incomplete),
        missing_service: u64::from(dropped_service.is_some()),
        orphaned: u64::from(dropped_span.is_some()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use prost::Message;
    use slis::journey::{Journey, RootMatcher};

    use super::*;

    const SHOP: &str = r#"
        [[journeys]]
        name = "checkout"
        service = "frontend"
        http_method = "POST"
        http_route = "/api/checkout"
        error_when = ["http.response.status_code >= 500"]
        expected_services = ["frontend", "checkout", "payment", "catalog"]

        [[journeys]]
        name = "search"
        service = "frontend"
        http_method = "GET"
        http_route = "/api/search"
        attributes = ['deployment.tier = "web"', "shard = 3"]
        expected_services = ["frontend", "catalog"]

        [[journeys]]
        name = "login"
        service = "frontend"
        http_method = "POST"
        http_route = "/api/login"
        status_error = false
        error_when = ["http.response.status_code >= 500"]
        expected_services = ["frontend", "auth"]

        [[journeys]]
        name = "nightly"
        span_name = "nightly export"
        "#;

    const NOW: Timestamp = Timestamp::from_unix_secs(1_750_000_000);

    /// The `[[journeys]]` of a config file, built straight into the domain list (the engine's
    /// `build_journeys` does the same plus validation, which these tests do not need).
    fn journeys(toml_text: &str) -> Journeys {
        #[derive(serde::Deserialize)]
        struct File {
            journeys: Vec<JourneyConfig>,
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct JourneyConfig {
            name: String,
            service: Option<String>,
            span_name: Option<String>,
            http_route: Option<String>,
            http_method: Option<String>,
            #[serde(default)]
            attributes: Vec<String>,
            #[serde(default = "yes")]
            status_error: bool,
            #[serde(default)]
            error_when: Vec<String>,
            #[serde(default)]
            expected_services: Vec<String>,
        }
        fn yes() -> bool {
            true
        }
        let matchers =
            |list: &[String]| -> Vec<AttrMatcher> { list.iter().map(|m| AttrMatcher::parse(m).unwrap()).collect() };
        let file: File = toml::from_str(toml_text).unwrap();
        Journeys(
            file.journeys
                .into_iter()
                .map(|c| Journey {
                    root: RootMatcher {
                        service: c.service,
                        span_name: c.span_name,
                        http_route: c.http_route,
                        http_method: c.http_method,
                        attributes: matchers(&c.attributes),
                    },
                    status_error: c.status_error,
                    error_rules: matchers(&c.error_when),
                    expected_services: c.expected_services.into_iter().map(Into::into).collect(),
                    labels: Default::default(),
                    name: c.name,
                })
                .collect(),
        )
    }

    fn defaults(rates: Rates) -> ShapeDefaults {
        ShapeDefaults {
            rates,
            slow_thresholds: HashMap::from([("search".to_owned(), Duration::from_millis(300))]),
            weights: HashMap::from([("checkout".to_owned(), 2.0)]),
            ..ShapeDefaults::default()
        }
    }

    fn shop(rates: Rates) -> (Journeys, Shape) {
        let journeys = journeys(SHOP);
        let shape = Shape::from_journeys(&journeys, &defaults(rates)).unwrap();
        (journeys, shape)
    }

    const FAULTY: Rates = Rates {
        error: 0.05,
        slow: 0.1,
        incomplete: 0.04,
    };

    /// `n` traces in batches of about 512 spans, each request through a protobuf round trip.
    fn generate(shape: &Shape, seed: u64, n: u64) -> (Vec<ExportTraceServiceRequest>, Generator) {
        let mut g = Generator::new(shape.clone(), seed).unwrap();
        let mut requests = Vec::new();
        let mut left = n;
        while left > 0 {
            let b = g.batch(NOW, 512, left);
            left -= b.traces;
            let bytes = b.request.encode_to_vec();
            requests.push(ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap());
        }
        (requests, g)
    }

    /// Traces by id, each span with its service, in request order.
    fn traces(requests: &[ExportTraceServiceRequest]) -> Vec<Vec<Span>> {
        let mut order = Vec::new();
        let mut by_id: HashMap<Vec<u8>, Vec<Span>> = HashMap::new();
        let mut seen_in_earlier_request = HashSet::new();
        for r in requests {
            let mut here = HashSet::new();
            for rs in &r.resource_spans {
                let service = service_name(rs).unwrap();
                for ss in &rs.scope_spans {
                    for s in &ss.spans {
                        assert!(
                            !seen_in_earlier_request.contains(&s.trace_id),
                            "a trace is split over requests"
                        );
                        here.insert(s.trace_id.clone());
                        if !by_id.contains_key(&s.trace_id) {
                            order.push(s.trace_id.clone());
                        }
                        by_id.entry(s.trace_id.clone()).or_default().push(to_slis(service, s));
                    }
                }
            }
            seen_in_earlier_request.extend(here);
        }
        order.into_iter().map(|id| by_id.remove(&id).unwrap()).collect()
    }

    /// What a correct engine counts, from the spans alone.
    fn recount(journeys: &Journeys, shape: &Shape, requests: &[ExportTraceServiceRequest]) -> Vec<Tally> {
        let mut tally = vec![Tally::default(); journeys.0.len()];
        for spans in traces(requests) {
            let roots: Vec<&Span> = spans.iter().filter(|s| s.is_root()).collect();
            assert_eq!(roots.len(), 1);
            let root = roots[0];
            let j = journeys.match_root(root).expect("every root belongs to a journey");
            let journey = &journeys.0[j];
            let ids: HashSet<SpanId> = spans.iter().map(|s| s.span_id).collect();
            let services: HashSet<&str> = spans.iter().map(|s| &*s.service).collect();
            let orphan = spans
                .iter()
                .any(|s| s.parent_span_id.is_some_and(|p| !ids.contains(&p)));
            let missing = journey.expected_services.iter().any(|s| !services.contains(&**s));
            let t = &mut tally[j];
            t.traces += 1;
            t.spans += spans.len() as u64;
            t.errors += u64::from(journey.is_error(root));
            t.slow += u64::from(root.duration_nanos() as u128 > shape.journeys[j].slow_threshold.as_nanos());
            t.incomplete += u64::from(orphan || missing);
            t.missing_service += u64::from(missing);
            t.orphaned += u64::from(orphan);
        }
        tally
    }

    #[test]
    fn the_same_seed_gives_the_same_requests() {
        let (_, shape) = shop(FAULTY);
        let (a, _) = generate(&shape, 42, 500);
        let (b, _) = generate(&shape, 42, 500);
        let (c, _) = generate(&shape, 43, 500);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn every_trace_is_well_formed() {
        let (journeys, shape) = shop(FAULTY);
        let (requests, g) = generate(&shape, 7, 10_000);
        let orphaned: u64 = g.tally().iter().map(|t| t.orphaned).sum();
        let mut trace_ids = HashSet::new();
        let mut with_orphans = 0;
        for spans in traces(&requests) {
            assert!(trace_ids.insert(spans[0].trace_id), "trace ids are unique");
            assert!(!spans[0].trace_id.is_zero());
            assert_eq!(spans.iter().filter(|s| s.is_root()).count(), 1, "exactly one root");
            let by_id: HashMap<SpanId, &Span> = spans.iter().map(|s| (s.span_id, s)).collect();
            assert_eq!(by_id.len(), spans.len(), "span ids are unique in a trace");
            let mut orphans = 0;
            for s in &spans {
                assert!(!s.span_id.is_zero());
                assert!(s.start <= s.end);
                match s.parent_span_id.map(|p| by_id.get(&p)) {
                    None => {}
                    Some(None) => orphans += 1,
                    Some(Some(parent)) => {
                        assert!(
                            parent.start <= s.start && s.end <= parent.end,
                            "{s:?} outside {parent:?}"
                        );
                        assert_eq!(parent.trace_id, s.trace_id);
                    }
                }
            }
            with_orphans += u64::from(orphans > 0);
            let root = spans.iter().find(|s| s.is_root()).unwrap();
            assert_eq!(root.end, NOW);
            assert!(journeys.match_root(root).is_some());
            if root.status == StatusCode::Error {
                assert!(matches!(
                    root.attribute("http.response.status_code"),
                    Some(AttrValue::Int(500..=504))
                ));
            }
            // About ten attributes per span, of mixed types.
            for s in &spans {
                assert!(
                    (9..=13).contains(&s.attributes.len()),
                    "{} attributes on {}",
                    s.attributes.len(),
                    s.name
                );
                assert!(s.attributes.iter().any(|(_, v)| matches!(v, AttrValue::Int(_))));
                assert!(s.attributes.iter().any(|(_, v)| matches!(v, AttrValue::Str(_))));
            }
            assert!(
                spans
                    .iter()
                    .flat_map(|s| &s.attributes)
                    .any(|(_, v)| matches!(v, AttrValue::Bool(_)))
            );
        }
        assert_eq!(with_orphans, orphaned, "orphans appear only where injected");
    }

    #[test]
    fn the_tally_is_what_an_engine_counts() {
        let (journeys, shape) = shop(FAULTY);
        let (requests, g) = generate(&shape, 11, 10_000);
        assert_eq!(recount(&journeys, &shape, &requests), g.tally());
    }

    #[test]
    fn injection_rates_hold_for_10_000_traces() {
        let (_, shape) = shop(FAULTY);
        let n = 10_000;
        let mut g = Generator::new(shape, 3).unwrap();
        while g.tally().iter().map(|t| t.traces).sum::<u64>() < n {
            g.batch(NOW, 512, n - g.tally().iter().map(|t| t.traces).sum::<u64>());
        }
        let mut total = Tally::default();
        for t in g.tally() {
            total += t;
        }
        assert_eq!(total.traces, n);
        let within = |what: &str, count: u64, p: f64| {
            let (mean, sd) = (n as f64 * p, (n as f64 * p * (1.0 - p)).sqrt());
            assert!(
                (count as f64 - mean).abs() <= 4.5 * sd,
                "{what}: {count}, expected {mean} ± {}",
                4.5 * sd
            );
        };
        within("errors", total.errors, FAULTY.error);
        within("slow", total.slow, FAULTY.slow);
        within("incomplete", total.incomplete, FAULTY.incomplete);
        // Weights 2:1:1:1.
        within("checkout", g.tally()[0].traces, 0.4);
        within("search", g.tally()[1].traces, 0.2);
        assert_eq!(total.incomplete, total.missing_service + total.orphaned);
        assert!(total.missing_service > 0 && total.orphaned > 0);
    }

    #[test]
    fn a_healthy_shape_has_no_bad_traces() {
        let (journeys, shape) = shop(Rates::default());
        let (requests, g) = generate(&shape, 5, 2_000);
        for t in recount(&journeys, &shape, &requests) {
            assert_eq!((t.errors, t.slow, t.incomplete), (0, 0, 0));
        }
        assert_eq!(g.tally()[0].spans, g.tally()[0].traces * 8);
    }

    #[test]
    fn an_incident_overrides_the_error_rate() {
        let (_, shape) = shop(Rates::default());
        let mut g = Generator::new(shape, 1).unwrap();
        g.set_error_rate(Some(1.0));
        let b = g.batch(NOW, 512, u64::MAX);
        assert_eq!(b.tally.iter().map(|t| t.errors).sum::<u64>(), b.traces);
        g.set_error_rate(None);
        let b = g.batch(NOW, 512, u64::MAX);
        assert_eq!(b.tally.iter().map(|t| t.errors).sum::<u64>(), 0);
    }

    #[test]
    fn batches_hold_whole_traces_up_to_the_limits() {
        let (_, shape) = shop(FAULTY);
        let mut g = Generator::new(shape, 9).unwrap();
        for _ in 0..50 {
            let b = g.batch(NOW, 512, u64::MAX);
            let spans: usize = b
                .request
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .map(|ss| ss.spans.len())
                .sum();
            assert_eq!(spans as u64, b.spans);
            assert!((512..512 + 11).contains(&b.spans), "{} spans", b.spans);
            assert_eq!(b.tally.iter().map(|t| t.traces).sum::<u64>(), b.traces);
            let names: Vec<_> = b
                .request
                .resource_spans
                .iter()
                .map(|rs| service_name(rs).unwrap())
                .collect();
            let unique: HashSet<_> = names.iter().collect();
            assert_eq!(unique.len(), names.len(), "one ResourceSpans per service");
        }
        assert_eq!(g.batch(NOW, 512, 3).traces, 3);
        assert_eq!(g.batch(NOW, 1, 10).traces, 1);
    }

    #[test]
    fn requests_survive_otlp_json() {
        let (_, shape) = shop(FAULTY);
        let (requests, _) = generate(&shape, 2, 100);
        for r in requests {
            let json = serde_json::to_vec(&r).unwrap();
            let back: ExportTraceServiceRequest = serde_json::from_slice(&json).unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn a_shape_from_journeys_follows_the_config() {
        let (_, shape) = shop(Rates::default());
        let checkout = &shape.journeys[0];
        assert_eq!(
            (
                checkout.service.as_str(),
                checkout.span_name.as_str(),
                checkout.http_method.as_str()
            ),
            ("frontend", "POST /api/checkout", "POST")
        );
        assert_eq!(
            checkout.visited_services(),
            ["frontend", "checkout", "payment", "catalog"]
        );
        assert_eq!(checkout.slow_threshold, Duration::from_millis(800));
        assert_eq!(checkout.latency, Latency::for_threshold(Duration::from_millis(800)));
        assert_eq!(checkout.weight, 2.0);
        let search = &shape.journeys[1];
        assert_eq!(search.slow_threshold, Duration::from_millis(300));
        assert_eq!(
            search.root_attributes,
            [
                ("deployment.tier".to_owned(), AttrValue::Str("web".into())),
                ("shard".to_owned(), AttrValue::Int(3))
            ]
        );
        let nightly = &shape.journeys[3];
        assert_eq!(
            (nightly.service.as_str(), nightly.http_route.as_str()),
            ("nightly", "/nightly")
        );
    }

    #[test]
    fn many_services_raise_the_fan_out() {
        let journeys = journeys(
            r#"
            [[journeys]]
            name = "wide"
            service = "edge"
            expected_services = ["a", "b", "c", "d", "e"]
            "#,
        );
        let shape = Shape::from_journeys(&journeys, &ShapeDefaults::default()).unwrap();
        assert_eq!(shape.journeys[0].spans_per_trace, 11);
        let mut g = Generator::new(shape, 0).unwrap();
        let b = g.batch(NOW, 1, 1);
        assert_eq!(b.spans, 11);
        assert_eq!(b.request.resource_spans.len(), 6);
    }

    #[test]
    fn shapes_that_cannot_be_generated_are_refused() {
        let refused = |toml_text: &str| {
            Shape::from_journeys(&journeys(toml_text), &ShapeDefaults::default())
                .unwrap_err()
                .to_string()
        };
        let cases = [
            (
                r#"
                [[journeys]]
                name = "any"
                http_route = "/api"
                [[journeys]]
                name = "post"
                http_route = "/api"
                http_method = "POST"
                "#,
                "journey \"post\": its synthesized root span \"POST /api\" belongs to journey \"any\", listed earlier",
            ),
            (
                r#"
                [[journeys]]
                name = "eu"
                attributes = ["region =~ eu-.*"]
                "#,
                "journey \"eu\": cannot synthesize a root span for matcher `region =~ \"eu-.*\"`: only `key = value` matchers can be",
            ),
            (
                r#"
                [[journeys]]
                name = "blind"
                service = "a"
                status_error = false
                "#,
                "journey \"blind\": an injected error (status ERROR, http.response.status_code 5xx) is not an error by its rules",
            ),
            (
                r#"
                [[journeys]]
                name = "touchy"
                service = "a"
                error_when = ["http.response.status_code >= 200"]
                "#,
                "journey \"touchy\": a healthy root (status UNSET, http.response.status_code 200) is an error by its rules",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(refused(text), want);
        }
    }

    #[test]
    fn invalid_shapes_are_refused() {
        let (_, shape) = shop(Rates::default());
        let with = |f: &dyn Fn(&mut JourneyShape)| {
            let mut s = shape.clone();
            f(&mut s.journeys[0]);
            Generator::new(s, 0).unwrap_err().to_string()
        };
        type Edit<'a> = &'a dyn Fn(&mut JourneyShape);
        let cases: [(Edit<'_>, &str); 5] = [
            (&|j| j.rates.error = 1.5, "error rate must be within [0, 1], got 1.5"),
            (
                &|j| j.spans_per_trace = 5,
                "5 spans per trace cannot visit 4 services: it needs at least 7",
            ),
            (&|j| j.slow_threshold = Duration::ZERO, "slow threshold must be above 0"),
            (
                &|j| j.latency.p99 = j.latency.median,
                "latency needs 0 < median < p99, got median 100ms and p99 100ms",
            ),
            (
                &|j| {
                    j.expected_services.clear();
                    j.spans_per_trace = 2;
                    j.rates.incomplete = 0.1;
                },
                "cannot be made incomplete: it needs a second expected service or at least 3 spans per trace",
            ),
        ];
        for (f, want) in cases {
            assert_eq!(with(f), format!("journey \"checkout\": {want}"));
        }
        let mut s = shape.clone();
        s.journeys.iter_mut().for_each(|j| j.weight = 0.0);
        assert_eq!(Generator::new(s, 0).unwrap_err(), ShapeError::Weights);
        assert_eq!(
            Generator::new(Shape { journeys: vec![] }, 0).unwrap_err(),
            ShapeError::NoJourneys
        );
    }
}
