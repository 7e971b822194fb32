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
use super::{Intake, wall_clock};
use crate::config::IngestConfig;
use crate::decode::AttrKeys;
use crate::metrics::{EngineMetrics, RejectLabels, RequestLabels};
use crate::pipeline::Pipeline;

const MAX_BODY: usize = 64 * 1024;

/// (case, content type, content encoding, body, expected status, message fragment)
type Case = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    StatusCode,
    &'static str,
);

fn intake(max_buffered_spans: usize) -> Arc<Intake> {
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
        pipeline: Arc::new(Mutex::new(Pipeline::new(
            journeys.clone(),
            &slos,
            &ingest,
            metrics.clone(),
        ))),
        metrics,
        keys: AttrKeys::from_journeys(&journeys),
        max_body: MAX_BODY,
        max_buffered_spans,
        record: None,
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

fn requests(intake: &Intake, receiver: &'static str, outcome: &'static str) -> u64 {
    intake
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
    let p = intake.pipeline.lock().unwrap();
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
        None,
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
