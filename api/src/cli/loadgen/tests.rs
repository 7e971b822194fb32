//! loadgen against tiny OTLP receivers started on 127.0.0.1:0 in the test: they decode what
//! arrives (gzip, protobuf, JSON, gRPC) and count it, which proves the wire format and the
//! bookkeeping; the integration against `tracebudget serve` lives in the end-to-end tests.

use std::collections::HashSet;
use std::io::Read;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::Parser;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatus;
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic_types::{ErrorDetails, StatusExt};

use super::*;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: Args,
}

fn parse(args: &[&str]) -> Result<Args, clap::Error> {
    Cli::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied())).map(|c| c.args)
}

/// How the receiver answers its `n`-th request (0-based).
#[derive(Clone, Copy, Debug)]
enum Reply {
    Ok { rejected: i64 },
    Refuse { status: u16, retry_after: Option<u64> },
}

/// What the receiver took (refused requests are not counted).
#[derive(Debug, Default)]
struct Received {
    requests: u64,
    spans: u64,
    trace_ids: HashSet<Vec<u8>>,
    error_roots: u64,
    content_types: HashSet<String>,
    encodings: HashSet<String>,
}

impl Received {
    fn take(&mut self, request: &ExportTraceServiceRequest) {
        self.requests += 1;
        for span in request
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
        {
            self.spans += 1;
            self.trace_ids.insert(span.trace_id.clone());
            let error = span.status.as_ref().is_some_and(|s| s.code == OtlpStatus::Error as i32);
            self.error_roots += u64::from(span.parent_span_id.is_empty() && error);
        }
    }
}

struct Receiver {
    script: Box<dyn Fn(u64) -> Reply + Send + Sync>,
    calls: Mutex<u64>,
    received: Mutex<Received>,
}

impl Receiver {
    fn new(script: impl Fn(u64) -> Reply + Send + Sync + 'static) -> Arc<Receiver> {
        Arc::new(Receiver {
            script: Box::new(script),
            calls: Mutex::new(0),
            received: Mutex::new(Received::default()),
        })
    }

    fn next_reply(&self) -> Reply {
        let mut calls = self.calls.lock().unwrap();
        *calls += 1;
        (self.script)(*calls - 1)
    }
}

async fn otlp_http(State(rx): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (content_type, encoding) = (text(header::CONTENT_TYPE), text(header::CONTENT_ENCODING));
    let mut raw = Vec::new();
    if encoding == "gzip" {
        flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut raw).unwrap();
    } else {
        raw = body.to_vec();
    }
    let json = content_type == "application/json";
    let request: ExportTraceServiceRequest = if json {
        serde_json::from_slice(&raw).unwrap()
    } else {
        assert_eq!(content_type, "application/x-protobuf");
        ExportTraceServiceRequest::decode(raw.as_slice()).unwrap()
    };
    match rx.next_reply() {
        Reply::Ok { rejected } => {
            let mut r = rx.received.lock().unwrap();
            r.take(&request);
            r.content_types.insert(content_type.clone());
            r.encodings.insert(encoding);
            let answer = ExportTraceServiceResponse {
                partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
                    rejected_spans: rejected,
                    error_message: "spans too old".to_owned(),
                }),
            };
            let body = if json {
                serde_json::to_vec(&answer).unwrap()
            } else {
                answer.encode_to_vec()
            };
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Reply::Refuse { status, retry_after } => {
            let mut response = (StatusCode::from_u16(status).unwrap(), "receiver says no").into_response();
            if let Some(secs) = retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, secs.into());
            }
            response
        }
    }
}

async fn http_receiver(script: impl Fn(u64) -> Reply + Send + Sync + 'static) -> (String, Arc<Receiver>) {
    let rx = Receiver::new(script);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/v1/traces", post(otlp_http))
        .with_state(rx.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

struct GrpcReceiver(Arc<Receiver>);

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let gzip = request.metadata().get("grpc-encoding").is_some_and(|v| v == "gzip");
        match self.0.next_reply() {
            Reply::Ok { rejected } => {
                let mut r = self.0.received.lock().unwrap();
                r.take(request.get_ref());
                r.encodings.insert(if gzip { "gzip" } else { "" }.to_owned());
                Ok(tonic::Response::new(ExportTraceServiceResponse {
                    partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
                        rejected_spans: rejected,
                        error_message: "spans too old".to_owned(),
                    }),
                }))
            }
            Reply::Refuse { retry_after, .. } => Err(tonic::Status::with_error_details(
                tonic::Code::ResourceExhausted,
                "assembler full",
                ErrorDetails::with_retry_info(retry_after.map(Duration::from_secs)),
            )),
        }
    }
}

async fn grpc_receiver(script: impl Fn(u64) -> Reply + Send + Sync + 'static) -> (String, Arc<Receiver>) {
    let rx = Receiver::new(script);
    let incoming = tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let url = format!("http://{}", incoming.local_addr().unwrap());
    let service = TraceServiceServer::new(GrpcReceiver(rx.clone())).accept_compressed(CompressionEncoding::Gzip);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await
            .unwrap()
    });
    (url, rx)
}

async fn loadgen(args: &[&str]) -> Summary {
    execute(parse(args).unwrap(), false).await.unwrap()
}

fn sum(summary: &Summary) -> Tally {
    let mut total = Tally::default();
    for (_, _, t) in &summary.journeys {
        total += t;
    }
    total
}

/// Busy and partial answers, as a receiver under pressure gives them.
fn busy_then_partial(n: u64) -> Reply {
    match n {
        0 => Reply::Refuse {
            status: 429,
            retry_after: Some(0),
        },
        1 => Reply::Refuse {
            status: 503,
            retry_after: None,
        },
        2 => Reply::Ok { rejected: 2 },
        _ => Reply::Ok { rejected: 0 },
    }
}

const FAULTS: &[&str] = &[
    "--journeys-default",
    "--rate",
    "0",
    "--traces",
    "300",
    "--spans-per-request",
    "64",
    "--concurrency",
    "3",
    "--error-rate",
    "0.1",
    "--incomplete-rate",
    "0.05",
    "--slow-rate",
    "0.05",
    "--seed",
    "4",
];

fn check_against(summary: &Summary, rx: &Receiver, rejected: u64, retries: u64) {
    let r = rx.received.lock().unwrap();
    let total = sum(summary);
    assert_eq!(summary.sent.traces, 300);
    assert_eq!(summary.accepted.traces, 300);
    assert_eq!(r.trace_ids.len(), 300);
    assert_eq!(total.traces, 300);
    assert_eq!(summary.sent.spans, r.spans);
    assert_eq!(total.spans, r.spans);
    assert_eq!(summary.accepted.spans, r.spans - rejected);
    assert_eq!(summary.sent.requests, r.requests);
    assert_eq!(summary.accepted.requests, r.requests);
    assert_eq!(total.errors, r.error_roots);
    assert!(total.errors > 0 && total.incomplete > 0 && total.slow > 0);
    assert_eq!(summary.rejected_spans, rejected);
    assert_eq!(summary.retries, retries);
    assert_eq!((summary.failed_requests, summary.failed_spans), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_gzip_with_backpressure_and_partial_success() {
    let (url, rx) = http_receiver(busy_then_partial).await;
    let mut args = FAULTS.to_vec();
    args.extend(["--endpoint", &url]);
    let summary = loadgen(&args).await;
    check_against(&summary, &rx, 2, 2);
    assert_eq!(summary.rejected_message.as_deref(), Some("spans too old"));
    let r = rx.received.lock().unwrap();
    assert_eq!(r.content_types, HashSet::from(["application/x-protobuf".to_owned()]));
    assert_eq!(r.encodings, HashSet::from(["gzip".to_owned()]));
    assert_eq!(summary.endpoint, format!("{url}/v1/traces"));
    // The thresholds come from the example config's latency SLOs.
    let thresholds: Vec<(&str, Duration)> = summary.journeys.iter().map(|(n, t, _)| (n.as_str(), *t)).collect();
    assert_eq!(
        thresholds,
        [
            ("checkout", Duration::from_millis(800)),
            ("search", Duration::from_millis(300)),
            ("login", Duration::from_millis(500))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_uncompressed() {
    let (url, rx) = http_receiver(busy_then_partial).await;
    let mut args = FAULTS.to_vec();
    args.extend(["--endpoint", &url, "--protocol", "http-json", "--gzip=false"]);
    let summary = loadgen(&args).await;
    check_against(&summary, &rx, 2, 2);
    let r = rx.received.lock().unwrap();
    assert_eq!(r.content_types, HashSet::from(["application/json".to_owned()]));
    assert_eq!(r.encodings, HashSet::from([String::new()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_gzip_with_resource_exhausted() {
    let (url, rx) = grpc_receiver(|n| match n {
        0 => Reply::Refuse {
            status: 0,
            retry_after: Some(0),
        },
        1 => Reply::Ok { rejected: 5 },
        _ => Reply::Ok { rejected: 0 },
    })
    .await;
    let mut args = FAULTS.to_vec();
    args.extend(["--endpoint", &url, "--protocol", "grpc"]);
    let summary = loadgen(&args).await;
    check_against(&summary, &rx, 5, 1);
    assert_eq!(
        rx.received.lock().unwrap().encodings,
        HashSet::from(["gzip".to_owned()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_sends_the_same_traces() {
    let ids = |rx: &Receiver| {
        let mut ids: Vec<Vec<u8>> = rx.received.lock().unwrap().trace_ids.iter().cloned().collect();
        ids.sort();
        ids
    };
    let ok = |_| Reply::Ok { rejected: 0 };
    let (a, rx_a) = http_receiver(ok).await;
    let (b, rx_b) = http_receiver(ok).await;
    let base = ["--journeys-default", "--rate", "0", "--traces", "50", "--seed", "9"];
    let first = loadgen(&[&base[..], &["--endpoint", &a]].concat()).await;
    let second = loadgen(&[&base[..], &["--endpoint", &b]].concat()).await;
    assert_eq!(ids(&rx_a), ids(&rx_b));
    assert_eq!(first.journeys, second.journeys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_count_as_failed() {
    let (url, rx) = http_receiver(|n| Reply::Refuse {
        status: if n == 0 { 400 } else { 503 },
        retry_after: Some(0),
    })
    .await;
    let summary = loadgen(&[
        "--journeys-default",
        "--rate",
        "0",
        "--traces",
        "20",
        "--spans-per-request",
        "80",
        "--concurrency",
        "1",
        "--max-retries",
        "2",
        "--endpoint",
        &url,
    ])
    .await;
    assert_eq!(summary.sent.requests, 2);
    assert_eq!(summary.failed_requests, 2);
    assert_eq!(summary.failed_spans, summary.sent.spans);
    assert_eq!(summary.accepted, Counts::default());
    assert_eq!(summary.retries, 2, "a 400 is not retried, a 503 twice");
    assert_eq!(
        summary.last_error.as_deref(),
        Some("gave up after 2 retries: HTTP 503 Service Unavailable: receiver says no")
    );
    assert_eq!(sum(&summary), Tally::default());
    assert_eq!(rx.received.lock().unwrap().requests, 0);
    let json = summary.to_json();
    assert_eq!(json["failed"]["requests"], 2);
    assert_eq!(json["journeys"]["checkout"]["traces"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_fails_every_root() {
    let (url, rx) = http_receiver(|_| Reply::Ok { rejected: 0 }).await;
    let summary = loadgen(&[
        "--journeys-default",
        "--rate",
        "0",
        "--traces",
        "200",
        "--incident",
        "0s:1h:1.0",
        "--endpoint",
        &url,
    ])
    .await;
    assert_eq!(sum(&summary).errors, 200);
    assert_eq!(rx.received.lock().unwrap().error_roots, 200);
    assert_eq!(summary.to_json()["incidents"][0]["error_rate"], 1.0);
}

#[test]
fn the_summary_is_one_json_object() {
    let summary = Summary {
        protocol: Protocol::Http,
        endpoint: "http://127.0.0.1:4318/v1/traces".to_owned(),
        seed: 1,
        elapsed: Duration::from_secs(2),
        sent: Counts {
            requests: 2,
            traces: 128,
            spans: 1024,
        },
        accepted: Counts {
            requests: 2,
            traces: 128,
            spans: 1020,
        },
        rejected_spans: 4,
        rejected_message: Some("too old".to_owned()),
        retries: 1,
        failed_requests: 0,
        failed_spans: 0,
        last_error: None,
        journeys: vec![(
            "checkout".to_owned(),
            Duration::from_millis(800),
            Tally {
                traces: 128,
                spans: 1024,
                errors: 3,
                slow: 2,
                incomplete: 1,
                missing_service: 1,
                orphaned: 0,
            },
        )],
        incidents: vec![],
        virtual_start: None,
    };
    assert_eq!(
        summary.to_json(),
        json!({
            "protocol": "http",
            "endpoint": "http://127.0.0.1:4318/v1/traces",
            "seed": 1,
            "elapsed_secs": 2.0,
            "sent": { "requests": 2, "traces": 128, "spans": 1024 },
            "accepted": { "requests": 2, "traces": 128, "spans": 1020 },
            "rejected_spans": 4,
            "rejected_message": "too old",
            "retries": 1,
            "failed": { "requests": 0, "spans": 0, "last_error": null },
            "spans_per_sec": 510.0,
            "incidents": [],
            "journeys": {
                "checkout": {
                    "traces": 128, "spans": 1024, "errors": 3, "slow": 2, "incomplete": 1,
                    "missing_service": 1, "orphaned": 0, "slow_threshold_ms": 800.0
                }
            }
        })
    );
}

#[test]
fn command_line() {
    let a = parse(&["--journeys-default"]).unwrap();
    assert_eq!(
        (
            a.delivery.protocol,
            a.delivery.rate,
            a.delivery.duration,
            a.delivery.traces,
            a.delivery.spans_per_request,
            a.delivery.concurrency,
            a.delivery.gzip
        ),
        (Protocol::Http, 10_000.0, None, None, 512, 4, true)
    );
    let a = parse(&[
        "-c",
        "shop.toml",
        "--protocol",
        "grpc",
        "--duration",
        "2m",
        "--slow-threshold",
        "250ms",
        "--incident",
        "30s:2m:1.0",
        "--incident",
        "5m:1m:0.5",
        "--mix",
        "checkout=3",
        "--gzip",
    ])
    .unwrap();
    assert_eq!(a.config, Some(PathBuf::from("shop.toml")));
    assert_eq!(a.delivery.protocol, Protocol::Grpc);
    assert_eq!(a.delivery.duration, Some(Duration::from_secs(120)));
    assert_eq!(a.traffic.slow_threshold, Some(Duration::from_millis(250)));
    assert_eq!(a.traffic.incidents.len(), 2);
    assert_eq!(a.traffic.mix, [("checkout".to_owned(), 3.0)]);
    assert!(a.delivery.gzip);
    assert!(!parse(&["--journeys-default", "--gzip=false"]).unwrap().delivery.gzip);

    for bad in [
        &[][..],                                             // neither --config nor --journeys-default
        &["--journeys-default", "-c", "x.toml"],             // both
        &["--journeys-default", "--error-rate", "2"],        // not a rate
        &["--journeys-default", "--incident", "30s"],        // not an incident
        &["--journeys-default", "--latency-median", "10ms"], // median without p99
        &["--journeys-default", "--spans-per-request", "0"], // empty requests
        &["--journeys-default", "--mix", "checkout"],        // no weight
        &["--journeys-default", "--protocol", "zipkin"],     // not OTLP
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn unknown_journeys_in_the_mix_are_refused() {
    let err = execute(parse(&["--journeys-default", "--mix", "cart=2"]).unwrap(), false)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "--mix names unknown journey \"cart\"; the journeys are [\"checkout\", \"search\", \"login\"]"
    );
}
