//! Every answer of the HTTP receivers, through the real axum routers (issue #3): status codes,
//! messages, counted outcomes, and valid requests still flowing after bad ones.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as OtlpSpan};
use prost::Message;
use slis::journey::{Journey, Journeys, RootMatcher};
use slis::slo::{Period, SliKind, Slo};
use tower::ServiceExt;

use super::otlp_http::RpcStatus;
use super::{Accepted, Destination, Format, Ingest, Intake, Payload, Protocol, Reason, Refusal, wall_clock};
use crate::config::IngestConfig;
use crate::decode::AttrKeys;
use crate::listen::{Listen, ListenMetrics};
use crate::metrics::{EngineMetrics, RejectLabels, RequestLabels};
use crate::pipeline::Pipeline;

const MAX_BODY: usize = 64 * 1024;
/// `max_body_bytes_in_flight` of the receivers under test.
const BUDGET: u64 = 4 * MAX_BODY as u64;

/// (case, content type, content encoding, body, expected status, message fragment)
type Case = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    StatusCode,
    &'static str,
);

fn intake(max_buffered_spans: usize) -> Arc<Intake<Ingest>> {
    let journeys = Journeys(vec![Journey {
        name: "checkout".into(),
        root: RootMatcher {
            service: Some("frontend".into()),
            ..Default::default()
        },
        status_error: true,
        error_rules: vec![],
        expected_services: vec!["frontend".into()],
        labels: vec![],
    }]);
    let slos = [Slo {
        name: "checkout-availability".into(),
        journey: 0,
        sli: SliKind::Error,
        objective: 0.999,
        period: Period::Rolling(Duration::from_secs(86_400)),
        policy: 0,
        labels: vec![],
    }];
    let metrics = Arc::new(EngineMetrics::default());
    let ingest = IngestConfig {
        max_buffered_spans,
        ..Default::default()
    };
    Arc::new(Intake {
        budget: super::budget::BodyBudget::new(BUDGET, metrics.body_bytes_in_flight.clone()),
        destination: Ingest {
            pipeline: Arc::new(Mutex::new(Pipeline::new(
                journeys.clone(),
                &slos,
                &ingest,
                metrics.clone(),
            ))),
            keys: AttrKeys::from_journeys(&journeys),
            max_buffered_spans,
            metrics,
        },
        max_body: MAX_BODY,
        auth: None,
    })
}

/// One OTLP request of `n` root spans of service `frontend`, ending now, trace ids from `first`.
fn otlp(first: u8, n: u8, end_offset: Duration) -> ExportTraceServiceRequest {
    let end = wall_clock().unix_nanos() as u64 + end_offset.as_nanos() as u64;
    let spans = (0..n)
        .map(|i| OtlpSpan {
            trace_id: vec![first.wrapping_add(i).max(1); 16],
            span_id: vec![7; 8],
            name: "POST /api/checkout".into(),
            kind: 2,
            start_time_unix_nano: end - 5_000_000,
            end_time_unix_nano: end,
            ..Default::default()
        })
        .collect();
    let service = KeyValue {
        key: "service.name".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue("frontend".into())),
        }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![service],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// How the receivers under test listen: a 1 s body deadline, 4 connections at most.
fn listen(name: &'static str, metrics: Arc<ListenMetrics>) -> Listen {
    Listen {
        name,
        tls: None,
        header_read_timeout: Duration::from_secs(5),
        body_read_timeout: Duration::from_secs(1),
        max_connections: 4,
        metrics,
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

async fn post(app: axum::Router, path: &str, content_type: &str, encoding: Option<&str>, body: Vec<u8>) -> Response {
    let mut req = Request::post(path).header("content-type", content_type);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    app.oneshot(req.body(Body::from(body)).unwrap()).await.unwrap()
}

async fn body(r: Response) -> Vec<u8> {
    axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap().to_vec()
}

fn requests(intake: &Intake<Ingest>, receiver: &'static str, outcome: &'static str) -> u64 {
    intake
        .destination
        .metrics
        .requests
        .get_or_create(&RequestLabels { receiver, outcome })
        .get()
}

#[tokio::test]
async fn otlp_http_answers_every_case_with_its_status_and_message() {
    let intake = intake(1_000);
    let app = super::otlp_http::router(intake.clone());
    let proto = "application/x-protobuf";
    let json = "application/json";
    let valid = otlp(1, 2, Duration::ZERO).encode_to_vec();
    let mut truncated = gzip(&valid);
    truncated.truncate(truncated.len() / 2);
    let bomb = gzip(&vec![0u8; 10 * MAX_BODY]);
    assert!(bomb.len() < MAX_BODY, "the bomb is small on the wire");

    // (case, content type, encoding, body, status, message fragment in the google.rpc.Status)
    let cases: Vec<Case> = vec![
        ("protobuf", proto, None, valid.clone(), StatusCode::OK, ""),
        (
            "gzip protobuf",
            proto,
            Some("gzip"),
            gzip(&otlp(10, 2, Duration::ZERO).encode_to_vec()),
            StatusCode::OK,
            "",
        ),
        (
            "malformed protobuf",
            proto,
            None,
            vec![0x0a, 0xff, 0xff, 0xff],
            StatusCode::BAD_REQUEST,
            "invalid protobuf",
        ),
        (
            "malformed json",
            json,
            None,
            b"{\"resourceSpans\": [".to_vec(),
            StatusCode::BAD_REQUEST,
            "line 1 column 19",
        ),
        ("empty json", json, None, vec![], StatusCode::BAD_REQUEST, "empty body"),
        (
            "unknown keys only",
            json,
            None,
            b"{\"foo\": 1}".to_vec(),
            StatusCode::BAD_REQUEST,
            "none of the known keys",
        ),
        (
            "truncated gzip",
            proto,
            Some("gzip"),
            truncated,
            StatusCode::BAD_REQUEST,
            "corrupt gzip body",
        ),
        (
            "gzip bomb",
            proto,
            Some("gzip"),
            bomb,
            StatusCode::PAYLOAD_TOO_LARGE,
            "exceeds max_body_size (65536 bytes)",
        ),
        (
            "raw too large",
            proto,
            None,
            vec![0; MAX_BODY + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "exceeds max_body_size",
        ),
        (
            "unknown encoding",
            proto,
            Some("br"),
            valid.clone(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "br",
        ),
        (
            "unknown content type",
            "text/plain",
            None,
            valid.clone(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported content type",
        ),
    ];
    for (case, ct, enc, bytes, status, message) in cases {
        let r = post(app.clone(), "/v1/traces", ct, enc, bytes).await;
        assert_eq!(r.status(), status, "{case}");
        let b = body(r).await;
        if status == StatusCode::OK {
            assert_eq!(
                ExportTraceServiceResponse::decode(&b[..]).unwrap().partial_success,
                None,
                "{case}"
            );
        } else if ct == proto {
            let s = RpcStatus::decode(&b[..]).unwrap_or_else(|e| panic!("{case}: {e}"));
            assert!(s.message.contains(message), "{case}: {}", s.message);
        } else {
            let text = String::from_utf8(b).unwrap();
            assert!(text.contains(message), "{case}: {text}");
        }
    }
    assert_eq!(requests(&intake, "otlp_http", "ok"), 2);
    assert_eq!(requests(&intake, "otlp_http", "malformed"), 5);
    assert_eq!(requests(&intake, "otlp_http", "too_large"), 2);
    assert_eq!(requests(&intake, "otlp_http", "unsupported_encoding"), 1);
    assert_eq!(requests(&intake, "otlp_http", "unsupported_media_type"), 1);

    // Valid spans keep flowing after all of that, over JSON too.
    let json_body =
        br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"frontend"}}]},
        "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x",
        "startTimeUnixNano":"NOW","endTimeUnixNano":"NOW"}]}]}]}"#;
    let now = wall_clock().unix_nanos().to_string();
    let json_body = String::from_utf8_lossy(json_body).replace("NOW", &now);
    let r = post(app.clone(), "/v1/traces", json, None, json_body.into_bytes()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r).await, b"{}");
    let p = intake.destination.pipeline.lock().unwrap();
    assert_eq!(p.root_counts().map(|c| c.total).collect::<Vec<_>>(), [5]);
}

#[tokio::test]
async fn partial_success_reports_refused_spans_in_the_requests_encoding() {
    let intake = intake(1_000);
    let app = super::otlp_http::router(intake.clone());
    let mut req = otlp(1, 3, Duration::ZERO);
    req.resource_spans[0].scope_spans[0].spans[1].end_time_unix_nano += 3_600 * 1_000_000_000; // an hour ahead
    req.resource_spans[0].scope_spans[0].spans[2].trace_id = vec![1, 2, 3]; // not 16 bytes
    let r = post(
        app.clone(),
        "/v1/traces",
        "application/x-protobuf",
        None,
        req.encode_to_vec(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let partial = ExportTraceServiceResponse::decode(&body(r).await[..])
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(partial.rejected_spans, 2);
    assert!(!partial.error_message.is_empty());
    let reject = |reason| {
        intake
            .destination
            .metrics
            .spans_rejected
            .get_or_create(&RejectLabels {
                receiver: "otlp_http",
                reason,
            })
            .get()
    };
    assert_eq!((reject("future"), reject("invalid_span")), (1, 1));
    assert_eq!(requests(&intake, "otlp_http", "partial"), 1);
}

#[tokio::test]
async fn a_full_assembler_pushes_back_with_retry_after() {
    let intake = intake(4);
    let app = super::otlp_http::router(intake.clone());
    let fill = otlp(1, 4, Duration::ZERO).encode_to_vec();
    assert_eq!(
        post(app.clone(), "/v1/traces", "application/x-protobuf", None, fill)
            .await
            .status(),
        StatusCode::OK
    );
    let more = otlp(100, 1, Duration::ZERO).encode_to_vec();
    let r = post(app.clone(), "/v1/traces", "application/x-protobuf", None, more).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers().get("retry-after").unwrap(), "1");
    let s = RpcStatus::decode(&body(r).await[..]).unwrap();
    assert_eq!(s.code, 8);
    assert!(s.message.contains("max_buffered_spans = 4"), "{}", s.message);
    let zipkin = super::zipkin::router(intake.clone());
    let r = post(zipkin, "/api/v2/spans", "application/json", None, b"[]".to_vec()).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(requests(&intake, "otlp_http", "backpressure"), 1);
    assert_eq!(requests(&intake, "zipkin", "backpressure"), 1);
}

#[tokio::test]
async fn zipkin_answers_every_case() {
    let intake = intake(1_000);
    let app = super::zipkin::router(intake.clone());
    let micros = wall_clock().unix_nanos() / 1_000;
    let valid = format!(
        r#"[{{"traceId":"5b8efff798038103","id":"1b8efff798038103","name":"post","timestamp":{},"duration":5000,"localEndpoint":{{"serviceName":"frontend"}}}}]"#,
        micros - 5_000
    );
    let cases: Vec<Case> = vec![
        (
            "json",
            "application/json",
            None,
            valid.clone().into_bytes(),
            StatusCode::ACCEPTED,
            "",
        ),
        (
            "gzip json",
            "application/json",
            Some("gzip"),
            gzip(valid.as_bytes()),
            StatusCode::ACCEPTED,
            "",
        ),
        (
            "malformed",
            "application/json",
            None,
            b"[{".to_vec(),
            StatusCode::BAD_REQUEST,
            "line 1 column 2",
        ),
        (
            "not an array",
            "application/json",
            None,
            b"{}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid json",
        ),
        (
            "proto3",
            "application/x-protobuf",
            None,
            vec![1],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Zipkin v2 JSON",
        ),
        (
            "too large",
            "application/json",
            None,
            vec![b' '; MAX_BODY + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "max_body_size",
        ),
    ];
    for (case, ct, enc, bytes, status, message) in cases {
        let r = post(app.clone(), "/api/v2/spans", ct, enc, bytes).await;
        assert_eq!(r.status(), status, "{case}");
        let text = String::from_utf8(body(r).await).unwrap();
        assert!(text.contains(message), "{case}: {text}");
    }
    assert_eq!(
        intake
            .destination
            .pipeline
            .lock()
            .unwrap()
            .root_counts()
            .map(|c| c.total)
            .collect::<Vec<_>>(),
        [1],
        "the gzip copy is a duplicate of the first"
    );
}

#[tokio::test]
async fn otlp_grpc_answers_ok_partial_too_large_and_resource_exhausted() {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use tonic_types::StatusExt;

    let intake = intake(6);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(super::otlp_grpc::serve(
        listener,
        intake.clone(),
        listen("otlp_grpc", Arc::default()),
        stop.clone().cancelled_owned(),
    ));
    let mut client = TraceServiceClient::connect(format!("http://{addr}")).await.unwrap();

    let ok = client.export(otlp(1, 2, Duration::ZERO)).await.unwrap().into_inner();
    assert_eq!(ok.partial_success, None);

    let mut partial = otlp(10, 2, Duration::ZERO);
    partial.resource_spans[0].scope_spans[0].spans[1].end_time_unix_nano += 3_600 * 1_000_000_000;
    let answer = client.export(partial).await.unwrap().into_inner();
    assert_eq!(answer.partial_success.unwrap().rejected_spans, 1);

    let mut huge = otlp(20, 1, Duration::ZERO);
    huge.resource_spans[0].scope_spans[0].spans[0].name = "x".repeat(MAX_BODY + 1);
    let status = client.export(huge).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("too large"), "{}", status.message());

    let fill = client.export(otlp(30, 3, Duration::ZERO)).await.unwrap().into_inner();
    assert_eq!(fill.partial_success, None);
    let status = client.export(otlp(40, 1, Duration::ZERO)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(
        status.message().contains("max_buffered_spans = 6"),
        "{}",
        status.message()
    );
    assert_eq!(
        status.get_details_retry_info().and_then(|r| r.retry_delay),
        Some(super::RETRY_AFTER)
    );

    for (outcome, n) in [("ok", 2), ("partial", 1), ("too_large", 1), ("backpressure", 1)] {
        assert_eq!(requests(&intake, "otlp_grpc", outcome), n, "{outcome}");
    }
    stop.cancel();
    server.await.unwrap().unwrap();
}

/// A destination that refuses every request with `reason`, or takes it when `None`, and keeps
/// what it was handed and what the front-ends counted.
#[derive(Debug)]
struct Scripted {
    reason: Option<Reason>,
    payloads: Mutex<Vec<Payload>>,
    counted: Mutex<Vec<(Protocol, &'static str)>>,
}

impl Destination for Scripted {
    async fn accept(&self, payload: Payload) -> Result<Accepted, Refusal> {
        self.payloads.lock().unwrap().push(payload);
        match self.reason {
            Some(reason) => Err(Refusal::new(reason, "not taken")),
            None => Ok(Accepted::default()),
        }
    }

    fn count(&self, protocol: Protocol, outcome: &'static str) {
        self.counted.lock().unwrap().push((protocol, outcome));
    }
}

fn scripted(reason: Option<Reason>) -> Arc<Intake<Scripted>> {
    Arc::new(Intake {
        destination: Scripted {
            reason,
            payloads: Mutex::default(),
            counted: Mutex::default(),
        },
        max_body: MAX_BODY,
        auth: None,
        budget: super::budget::BodyBudget::new(BUDGET, Default::default()),
    })
}

#[tokio::test]
async fn every_front_end_hands_its_destination_the_body_as_received() {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;

    let intake = scripted(None);
    let request = otlp(1, 2, Duration::ZERO);
    let proto = request.encode_to_vec();
    let http = super::otlp_http::router(intake.clone());
    let r = post(
        http.clone(),
        "/v1/traces",
        "application/x-protobuf",
        Some("gzip"),
        gzip(&proto),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = post(http, "/v1/traces", "application/json", None, b"{}".to_vec()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let zipkin = super::zipkin::router(intake.clone());
    let r = post(zipkin, "/api/v2/spans", "application/json", None, b"[]".to_vec()).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(super::otlp_grpc::serve(
        listener,
        intake.clone(),
        listen("otlp_grpc", Arc::default()),
        stop.clone().cancelled_owned(),
    ));
    let mut client = TraceServiceClient::connect(format!("http://{addr}")).await.unwrap();
    client.export(request.clone()).await.unwrap();
    stop.cancel();
    server.await.unwrap().unwrap();

    let payloads = intake.destination.payloads.lock().unwrap();
    assert!(
        matches!(&payloads[0], Payload::OtlpProtobuf(b) if b[..] == proto[..]),
        "inflated"
    );
    assert!(matches!(&payloads[1], Payload::OtlpJson(b) if &b[..] == b"{}"));
    assert!(matches!(&payloads[2], Payload::ZipkinJson(b) if &b[..] == b"[]"));
    assert!(matches!(&payloads[3], Payload::Otlp(r) if *r == request));
    assert_eq!(payloads.len(), 4);
    let protocols: Vec<Protocol> = payloads.iter().map(Payload::protocol).collect();
    let counted = intake.destination.counted.lock().unwrap();
    assert_eq!(
        *counted,
        protocols.into_iter().map(|p| (p, "ok")).collect::<Vec<_>>(),
        "each request counted once, under its front-end"
    );
}

#[tokio::test]
async fn a_destinations_refusal_is_answered_from_the_table_by_every_front_end() {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use tonic_types::StatusExt;

    // (reason, HTTP status, google.rpc.Status code, retry after, gRPC code)
    let cases = [
        (
            Reason::Unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            14,
            true,
            tonic::Code::Unavailable,
        ),
        (
            Reason::RecordFailed,
            StatusCode::SERVICE_UNAVAILABLE,
            14,
            false,
            tonic::Code::Unavailable,
        ),
        (
            Reason::Backpressure,
            StatusCode::TOO_MANY_REQUESTS,
            8,
            true,
            tonic::Code::ResourceExhausted,
        ),
        (
            Reason::Malformed,
            StatusCode::BAD_REQUEST,
            3,
            false,
            tonic::Code::InvalidArgument,
        ),
    ];
    for (reason, status, rpc_code, retry, grpc_code) in cases {
        let intake = scripted(Some(reason));
        let retry_after = |r: &Response| r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        let expected_retry_after = retry.then(|| "1".to_owned());

        let r = post(
            super::otlp_http::router(intake.clone()),
            "/v1/traces",
            "application/json",
            None,
            b"{}".to_vec(),
        )
        .await;
        assert_eq!(
            (r.status(), retry_after(&r)),
            (status, expected_retry_after.clone()),
            "{reason:?}"
        );
        let json = format!(r#"{{"code":{rpc_code},"message":"not taken"}}"#);
        assert_eq!(String::from_utf8(body(r).await).unwrap(), json, "{reason:?}");

        let r = post(
            super::otlp_http::router(intake.clone()),
            "/v1/traces",
            "application/x-protobuf",
            None,
            vec![],
        )
        .await;
        assert_eq!(
            (r.status(), retry_after(&r)),
            (status, expected_retry_after.clone()),
            "{reason:?}"
        );
        let answer = RpcStatus::decode(&body(r).await[..]).unwrap();
        assert_eq!(
            (answer.code, answer.message.as_str()),
            (rpc_code, "not taken"),
            "{reason:?}"
        );

        let zipkin = super::zipkin::router(intake.clone());
        let r = post(zipkin, "/api/v2/spans", "application/json", None, b"[]".to_vec()).await;
        assert_eq!(
            (r.status(), retry_after(&r)),
            (status, expected_retry_after),
            "{reason:?}"
        );
        assert_eq!(body(r).await, b"not taken", "{reason:?}");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let server = tokio::spawn(super::otlp_grpc::serve(
            listener,
            intake.clone(),
            listen("otlp_grpc", Arc::default()),
            stop.clone().cancelled_owned(),
        ));
        let mut client = TraceServiceClient::connect(format!("http://{addr}")).await.unwrap();
        let refused = client.export(otlp(1, 1, Duration::ZERO)).await.unwrap_err();
        assert_eq!(
            (refused.code(), refused.message()),
            (grpc_code, "not taken"),
            "{reason:?}"
        );
        assert_eq!(
            refused.get_details_retry_info().and_then(|r| r.retry_delay),
            retry.then_some(super::RETRY_AFTER),
            "{reason:?}"
        );
        stop.cancel();
        server.await.unwrap().unwrap();

        let outcome = reason.outcome();
        assert_eq!(
            *intake.destination.counted.lock().unwrap(),
            [
                (Protocol::OtlpHttp(Format::Json), outcome),
                (Protocol::OtlpHttp(Format::Protobuf), outcome),
                (Protocol::Zipkin, outcome),
                (Protocol::OtlpGrpc, outcome),
            ],
            "{reason:?}"
        );
    }
}

// Issue 18: every request body has one deadline, every listener a cap on connections, all
// bodies in flight one byte budget, and a body announced too large is refused before it is read.
// Real TCP clients on loopback against `serve_http` and the gRPC server, as `serve` runs them.

mod limits {
    use std::net::SocketAddr;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::listen::{ListenerLabel, ListenerLabels, serve_http};

    /// The receivers of one intake on loopback, as `receiver::start` serves them.
    struct Receivers {
        intake: Arc<Intake<Ingest>>,
        metrics: Arc<ListenMetrics>,
        http: SocketAddr,
        zipkin: SocketAddr,
        grpc: SocketAddr,
        stop: CancellationToken,
    }

    impl Receivers {
        async fn start(change: impl Fn(&mut Listen)) -> Receivers {
            let intake = intake(1_000);
            let metrics = Arc::new(ListenMetrics::default());
            let stop = CancellationToken::new();
            let bind = || async { tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() };
            let with = |name| {
                let mut l = listen(name, metrics.clone());
                change(&mut l);
                l
            };
            let (http, zipkin, grpc) = (bind().await, bind().await, bind().await);
            let addrs = (
                http.local_addr().unwrap(),
                zipkin.local_addr().unwrap(),
                grpc.local_addr().unwrap(),
            );
            tokio::spawn(serve_http(
                http,
                super::super::otlp_http::router(intake.clone()),
                with("otlp_http"),
                stop.clone().cancelled_owned(),
            ));
            tokio::spawn(serve_http(
                zipkin,
                super::super::zipkin::router(intake.clone()),
                with("zipkin"),
                stop.clone().cancelled_owned(),
            ));
            tokio::spawn(super::super::otlp_grpc::serve(
                grpc,
                intake.clone(),
                with("otlp_grpc"),
                stop.clone().cancelled_owned(),
            ));
            Receivers {
                intake,
                metrics,
                http: addrs.0,
                zipkin: addrs.1,
                grpc: addrs.2,
                stop,
            }
        }

        fn timeouts(&self, listener: &'static str, reason: &'static str) -> u64 {
            self.metrics
                .http_timeouts
                .get_or_create(&ListenerLabels { listener, reason })
                .get()
        }

        fn refused(&self, listener: &'static str) -> u64 {
            self.metrics
                .connections_refused
                .get_or_create(&ListenerLabels {
                    listener,
                    reason: "max_connections",
                })
                .get()
        }

        fn open(&self, listener: &'static str) -> i64 {
            self.metrics
                .connections_open
                .get_or_create(&ListenerLabel { listener })
                .get()
        }
    }

    impl Drop for Receivers {
        fn drop(&mut self) {
            self.stop.cancel();
        }
    }

    /// Waits (10 s at most) until `done` holds.
    async fn until(what: &str, done: impl Fn() -> bool) {
        for _ in 0..1_000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("waited 10 s for {what}");
    }

    /// Reads until the server closes the connection (a reset counts as closed); what arrived.
    /// Panics when the connection is still open after 10 s.
    async fn read_to_close(stream: &mut TcpStream) -> String {
        let mut got = Vec::new();
        match tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Ok(Err(e)) => panic!("reading failed: {e} (got {got:?})"),
            Err(_) => panic!(
                "the server did not close the connection in 10 s (got {:?})",
                String::from_utf8_lossy(&got)
            ),
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    fn head(path: &str, content_length: u64) -> String {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: {content_length}\r\n\r\n"
        )
    }

    /// An empty batch padded with spaces to `len` bytes: a valid body, OTLP/JSON or Zipkin.
    fn padded(zipkin: bool, len: usize) -> Vec<u8> {
        let (open, close) = if zipkin {
            ("[", b']')
        } else {
            ("{\"resourceSpans\":[]", b'}')
        };
        let mut body = open.as_bytes().to_vec();
        body.resize(len - 1, b' ');
        body.push(close);
        body
    }

    #[tokio::test]
    async fn issue_18_a_body_sent_a_byte_at_a_time_is_cut_off_at_its_deadline() {
        let r = Receivers::start(|_| {}).await;
        // (receiver, listener, path)
        for (receiver, addr, path) in [
            ("otlp_http", r.http, "/v1/traces"),
            ("zipkin", r.zipkin, "/api/v2/spans"),
        ] {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(head(path, 100).as_bytes()).await.unwrap();
            let (mut read, mut write) = stream.into_split();
            // One byte every 100 ms: each arrives well within any idle timeout, and all 100 would
            // take 10 s; the deadline is 1 s after the head.
            let trickle = tokio::spawn(async move {
                let mut sent = 0;
                while sent < 100 && write.write_all(b" ").await.is_ok() {
                    sent += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                sent
            });
            let mut got = Vec::new();
            let closed = tokio::time::timeout(Duration::from_secs(20), read.read_to_end(&mut got)).await;
            let answer = String::from_utf8_lossy(&got);
            assert!(
                matches!(closed, Ok(Ok(_)))
                    || matches!(&closed, Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset),
                "{receiver}: the connection is still open: {closed:?} {answer}"
            );
            assert!(answer.starts_with("HTTP/1.1 408"), "{receiver}: {answer}");
            assert!(
                answer.ends_with("the request body was not complete within body_read_timeout (1s)")
                    || answer.ends_with(
                        r#"{"code":4,"message":"the request body was not complete within body_read_timeout (1s)"}"#
                    ),
                "{receiver}: {answer}"
            );
            let sent = trickle.await.unwrap();
            assert!(sent < 100, "{receiver}: the whole body went through ({sent} bytes)");
            assert_eq!(r.timeouts(receiver, "body"), 1, "{receiver}");
            assert_eq!(requests(&r.intake, receiver, "timeout"), 1, "{receiver}");
        }
        assert_eq!(r.timeouts("otlp_http", "header"), 0);
        assert_eq!(
            r.intake.budget.in_flight(),
            0,
            "the cut-off bodies gave their bytes back"
        );
    }

    #[tokio::test]
    async fn issue_18_a_grpc_body_sent_a_byte_at_a_time_is_cut_off_at_its_deadline() {
        use http_body_util::StreamBody;
        use hyper::body::Frame;
        use hyper_util::rt::{TokioExecutor, TokioIo};

        let r = Receivers::start(|_| {}).await;
        let tcp = TcpStream::connect(r.grpc).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(1);
        let frames = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            let data = rx.recv().await?;
            Some((Ok::<_, std::convert::Infallible>(Frame::data(data)), rx))
        }));
        let request = axum::http::Request::post(format!(
            "http://{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            r.grpc
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(StreamBody::new(frames))
        .unwrap();
        let answer = sender.send_request(request);
        // A message of 100 bytes announced, then one byte every 100 ms.
        let trickle = tokio::spawn(async move {
            let mut sent = 0;
            if tx.send(bytes::Bytes::from_static(&[0, 0, 0, 0, 100])).await.is_ok() {
                while sent < 100 && tx.send(bytes::Bytes::from_static(&[0])).await.is_ok() {
                    sent += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            sent
        });
        let answer = tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .expect("no answer within 10 s")
            .unwrap();
        let status = tonic::Status::from_header_map(answer.headers()).expect("a trailers-only answer");
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
        assert_eq!(
            status.message(),
            "the request body was not complete within body_read_timeout (1s)"
        );
        drop(answer);
        drop(sender);
        let sent = trickle.await.unwrap();
        assert!(sent < 100, "the whole body went through ({sent} bytes)");
        assert_eq!(r.timeouts("otlp_grpc", "body"), 1);
        assert_eq!(requests(&r.intake, "otlp_grpc", "timeout"), 1);
        assert_eq!(r.intake.budget.in_flight(), 0);
    }

    #[tokio::test]
    async fn issue_18_a_connection_over_max_connections_is_closed_at_once_and_counted() {
        let r = Receivers::start(|_| {}).await;
        for (listener, addr) in [("otlp_http", r.http), ("zipkin", r.zipkin), ("otlp_grpc", r.grpc)] {
            let mut held = Vec::new();
            for _ in 0..4 {
                held.push(TcpStream::connect(addr).await.unwrap());
            }
            until(&format!("{listener}: 4 connections open"), || r.open(listener) == 4).await;
            let mut fifth = TcpStream::connect(addr).await.unwrap();
            assert_eq!(read_to_close(&mut fifth).await, "", "{listener}");
            assert_eq!(r.refused(listener), 1, "{listener}");
            assert_eq!(r.open(listener), 4, "{listener}");
            // A slot given back is taken again.
            drop(held.pop());
            until(&format!("{listener}: 3 connections open"), || r.open(listener) == 3).await;
            let _fourth = TcpStream::connect(addr).await.unwrap();
            until(&format!("{listener}: 4 connections open again"), || {
                r.open(listener) == 4
            })
            .await;
            assert_eq!(r.refused(listener), 1, "{listener}");
        }
    }

    #[tokio::test]
    async fn issue_18_a_body_announced_over_max_body_size_is_refused_before_it_is_read() {
        let r = Receivers::start(|l| l.body_read_timeout = Duration::from_secs(60)).await;
        // (receiver, address, path, answer's last line)
        let cases = [
            (
                "otlp_http",
                r.http,
                "/v1/traces",
                r#"{"code":3,"message":"content-length 1000000000000 exceeds max_body_size (65536 bytes)"}"#,
            ),
            (
                "zipkin",
                r.zipkin,
                "/api/v2/spans",
                "content-length 1000000000000 exceeds max_body_size (65536 bytes)",
            ),
        ];
        for (receiver, addr, path, message) in cases {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(head(path, 1_000_000_000_000).as_bytes())
                .await
                .unwrap();
            stream.write_all(b"{\"resourceSpans\":[").await.unwrap();
            // Answered long before the 60 s body deadline, and the connection closed.
            let answer = read_to_close(&mut stream).await;
            assert!(answer.starts_with("HTTP/1.1 413"), "{receiver}: {answer}");
            assert!(answer.ends_with(message), "{receiver}: {answer}");
            assert_eq!(requests(&r.intake, receiver, "too_large"), 1, "{receiver}");
            assert_eq!(r.timeouts(receiver, "body"), 0, "{receiver}");
        }
        assert_eq!(r.intake.budget.in_flight(), 0);
    }

    #[tokio::test]
    async fn issue_18_bodies_over_the_shared_budget_get_429_and_resource_exhausted() {
        use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
        use tonic_types::StatusExt;

        let r = Receivers::start(|l| l.body_read_timeout = Duration::from_secs(60)).await;
        // Four bodies of 64 KiB, 60 KiB of each sent, hold 240 KiB of the 256 KiB budget.
        let mut holding = Vec::new();
        for zipkin in [false, false, true, true] {
            let (addr, path) = if zipkin {
                (r.zipkin, "/api/v2/spans")
            } else {
                (r.http, "/v1/traces")
            };
            let body = padded(zipkin, MAX_BODY);
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(head(path, MAX_BODY as u64).as_bytes()).await.unwrap();
            stream.write_all(&body[..60 * 1024]).await.unwrap();
            holding.push((stream, body));
        }
        until("240 KiB in flight", || r.intake.budget.in_flight() == 240 * 1024).await;

        // 40 KiB more do not fit in the 16 KiB left, on any receiver.
        let message = "request bodies in flight would exceed max_body_bytes_in_flight (262144 bytes): retry after 1s";
        let big = padded(false, 40 * 1024);
        let mut stream = TcpStream::connect(r.http).await.unwrap();
        stream
            .write_all(head("/v1/traces", big.len() as u64).as_bytes())
            .await
            .unwrap();
        let _ = stream.write_all(&big).await;
        let answer = read_to_close(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("\r\nretry-after: 1\r\n"),
            "{answer}"
        );
        assert!(
            answer.ends_with(&format!(r#"{{"code":8,"message":"{message}"}}"#)),
            "{answer}"
        );

        let mut grpc = TraceServiceClient::connect(format!("http://{}", r.grpc)).await.unwrap();
        let mut request = otlp(1, 1, Duration::ZERO);
        request.resource_spans[0].scope_spans[0].spans[0].name = "x".repeat(40 * 1024);
        let status = grpc.export(request.clone()).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        assert_eq!(status.message(), message);
        assert_eq!(
            status.get_details_retry_info().and_then(|r| r.retry_delay),
            Some(super::super::RETRY_AFTER)
        );
        assert_eq!(requests(&r.intake, "otlp_http", "in_flight_limit"), 1);
        assert_eq!(requests(&r.intake, "otlp_grpc", "in_flight_limit"), 1);
        assert_eq!(
            r.intake.budget.in_flight(),
            240 * 1024,
            "the refused bytes were given back"
        );

        // The held bodies end and are answered; their bytes come back, and the retry fits.
        for (mut stream, body) in holding {
            stream.write_all(&body[60 * 1024..]).await.unwrap();
            let mut head = [0; 12];
            stream.read_exact(&mut head).await.unwrap();
            assert!(
                matches!(&head, b"HTTP/1.1 200" | b"HTTP/1.1 202"),
                "{:?}",
                String::from_utf8_lossy(&head)
            );
        }
        until("nothing in flight", || r.intake.budget.in_flight() == 0).await;
        let answer = grpc.export(request).await.unwrap().into_inner();
        assert_eq!(answer.partial_success, None);
        assert_eq!(r.intake.budget.in_flight(), 0);
        for (receiver, outcome, n) in [
            ("otlp_http", "ok", 2),
            ("zipkin", "ok", 2),
            ("otlp_grpc", "ok", 1),
            ("otlp_http", "in_flight_limit", 1),
            ("otlp_grpc", "in_flight_limit", 1),
        ] {
            assert_eq!(requests(&r.intake, receiver, outcome), n, "{receiver} {outcome}");
        }
    }
}
