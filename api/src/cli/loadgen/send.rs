//! Delivery of one request over OTLP/HTTP (protobuf or JSON) or OTLP/gRPC, and what its answer
//! means: accepted (maybe with a `partial_success`), worth retrying (429, 502, 503, 504,
//! RESOURCE_EXHAUSTED, UNAVAILABLE, a refused connection; after `Retry-After` / `RetryInfo` when
//! given) or failed for good.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// How long one attempt may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest wait before a retry, whatever `Retry-After` asks.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// OTLP/HTTP with protobuf bodies, `POST /v1/traces`.
    Http,
    /// OTLP/HTTP with the official JSON encoding.
    HttpJson,
    /// OTLP/gRPC, `TraceService/Export` (plaintext).
    Grpc,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::HttpJson => "http-json",
            Protocol::Grpc => "grpc",
        }
    }

    /// The full URL requests go to: the OTLP default on loopback when none is given; for HTTP,
    /// `/v1/traces` appended unless the URL already ends with it.
    pub fn endpoint(self, given: Option<&str>) -> anyhow::Result<String> {
        let url = match (self, given) {
            (Protocol::Grpc, given) => given.unwrap_or("http://127.0.0.1:4317").to_owned(),
            (_, None) => "http://127.0.0.1:4318/v1/traces".to_owned(),
            (_, Some(u)) if u.ends_with("/v1/traces") => u.to_owned(),
            (_, Some(u)) => format!("{}/v1/traces", u.trim_end_matches('/')),
        };
        let parsed = reqwest::Url::parse(&url).with_context(|| format!("invalid endpoint {url:?}"))?;
        match parsed.scheme() {
            "http" => Ok(url),
            "https" if self != Protocol::Grpc => Ok(url),
            other => anyhow::bail!(
                "invalid endpoint {url:?}: scheme {other:?} is not supported, use http{}",
                if self == Protocol::Grpc { "" } else { " or https" }
            ),
        }
    }
}

/// What one attempt came to.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// The receiver took the request; `rejected` spans of it were refused (`partial_success`).
    Accepted { rejected: u64, message: String },
    /// Worth trying again, after `after` when the receiver said so.
    Retry { after: Option<Duration>, reason: String },
    /// Not worth retrying.
    Failed { reason: String },
}

/// A request ready to go, encoded once however often it is retried.
#[derive(Debug)]
pub enum Prepared {
    Body(Bytes),
    Message(ExportTraceServiceRequest),
}

/// Sends requests to one endpoint, never anywhere else (no redirects, no proxies).
#[derive(Debug, Clone)]
pub enum Sender {
    Http {
        client: reqwest::Client,
        url: String,
        json: bool,
        gzip: bool,
    },
    Grpc {
        client: TraceServiceClient<Channel>,
    },
}

impl Sender {
    /// `url` as [`Protocol::endpoint`] gives it. Needs a tokio runtime.
    pub fn new(protocol: Protocol, url: String, gzip: bool) -> anyhow::Result<Sender> {
        Ok(match protocol {
            Protocol::Http | Protocol::HttpJson => {
                // reqwest is built without a TLS provider: install ring's once (a second call fails
                // harmlessly).
                let _ = rustls::crypto::ring::default_provider().install_default();
                let client = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .no_proxy()
                    .timeout(REQUEST_TIMEOUT)
                    .build()
                    .context("cannot build the HTTP client")?;
                Sender::Http {
                    client,
                    url,
                    json: protocol == Protocol::HttpJson,
                    gzip,
                }
            }
            Protocol::Grpc => {
                let channel = tonic::transport::Endpoint::from_shared(url.clone())
                    .with_context(|| format!("invalid endpoint {url:?}"))?
                    .timeout(REQUEST_TIMEOUT)
                    .connect_lazy();
                let mut client = TraceServiceClient::new(channel).max_decoding_message_size(64 << 20);
                if gzip {
                    client = client
                        .send_compressed(CompressionEncoding::Gzip)
                        .accept_compressed(CompressionEncoding::Gzip);
                }
                Sender::Grpc { client }
            }
        })
    }

    /// Encodes (and compresses) the request for this sender.
    pub fn prepare(&self, request: ExportTraceServiceRequest) -> anyhow::Result<Prepared> {
        match self {
            Sender::Http { json, gzip, .. } => {
                let body = if *json {
                    serde_json::to_vec(&request).context("cannot encode OTLP JSON")?
                } else {
                    request.encode_to_vec()
                };
                let body = if *gzip {
                    let mut e = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
                    e.write_all(&body).context("cannot gzip")?;
                    e.finish().context("cannot gzip")?
                } else {
                    body
                };
                Ok(Prepared::Body(body.into()))
            }
            Sender::Grpc { .. } => Ok(Prepared::Message(request)),
        }
    }

    /// One attempt.
    pub async fn send(&self, prepared: &Prepared) -> Outcome {
        match (self, prepared) {
            (
                Sender::Http {
                    client,
                    url,
                    json,
                    gzip,
                },
                Prepared::Body(body),
            ) => {
                let mut request = client
                    .post(url)
                    .header(
                        CONTENT_TYPE,
                        if *json {
                            "application/json"
                        } else {
                            "application/x-protobuf"
                        },
                    )
                    .body(body.clone());
                if *gzip {
                    request = request.header(CONTENT_ENCODING, "gzip");
                }
                match request.send().await {
                    Ok(response) => http_outcome(response).await,
                    Err(e) if e.is_connect() || e.is_timeout() => Outcome::Retry {
                        after: None,
                        reason: format!("{e:#}"),
                    },
                    Err(e) => Outcome::Failed {
                        reason: format!("{e:#}"),
                    },
                }
            }
            (Sender::Grpc { client }, Prepared::Message(message)) => {
                match client.clone().export(message.clone()).await {
                    Ok(response) => accepted(response.into_inner()),
                    Err(status) => grpc_outcome(&status),
                }
            }
            _ => Outcome::Failed {
                reason: "request prepared for another protocol".to_owned(),
            },
        }
    }
}

fn accepted(response: ExportTraceServiceResponse) -> Outcome {
    let partial = response.partial_success.unwrap_or_default();
    Outcome::Accepted {
        rejected: u64::try_from(partial.rejected_spans).unwrap_or(0),
        message: partial.error_message,
    }
}

async fn http_outcome(response: reqwest::Response) -> Outcome {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let body = response.bytes().await.unwrap_or_default();
    if status.is_success() {
        // A body that does not decode still means success; only partial_success is read from it.
        let decoded = if body.is_empty() {
            None
        } else if json {
            serde_json::from_slice::<ExportTraceServiceResponse>(&body).ok()
        } else {
            ExportTraceServiceResponse::decode(body).ok()
        };
        return accepted(decoded.unwrap_or_default());
    }
    let reason = format!(
        "HTTP {status}: {}",
        String::from_utf8_lossy(&body[..body.len().min(300)]).trim()
    );
    match status {
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Outcome::Retry {
            after: retry_after,
            reason,
        },
        _ => Outcome::Failed { reason },
    }
}

fn grpc_outcome(status: &tonic::Status) -> Outcome {
    let reason = format!("gRPC {:?}: {}", status.code(), status.message());
    match status.code() {
        tonic::Code::ResourceExhausted
        | tonic::Code::Unavailable
        | tonic::Code::Aborted
        | tonic::Code::DeadlineExceeded => Outcome::Retry {
            after: status.get_details_retry_info().and_then(|r| r.retry_delay),
            reason,
        },
        _ => Outcome::Failed { reason },
    }
}

/// The wait before retry number `attempt` (0-based): what the receiver asked for, else 100 ms
/// doubling per attempt; at most [`MAX_BACKOFF`].
pub fn backoff(attempt: u32, asked: Option<Duration>) -> Duration {
    asked
        .unwrap_or_else(|| Duration::from_millis(100).saturating_mul(1 << attempt.min(16)))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let cases = [
            (Protocol::Http, None, "http://127.0.0.1:4318/v1/traces"),
            (Protocol::HttpJson, None, "http://127.0.0.1:4318/v1/traces"),
            (Protocol::Grpc, None, "http://127.0.0.1:4317"),
            (Protocol::Http, Some("http://[::1]:9000"), "http://[::1]:9000/v1/traces"),
            (Protocol::Http, Some("http://host:4318/"), "http://host:4318/v1/traces"),
            (
                Protocol::Http,
                Some("https://h/otlp/v1/traces"),
                "https://h/otlp/v1/traces",
            ),
            (Protocol::Grpc, Some("http://127.0.0.1:5317"), "http://127.0.0.1:5317"),
        ];
        for (protocol, given, want) in cases {
            assert_eq!(protocol.endpoint(given).unwrap(), want);
        }
        assert_eq!(
            Protocol::Grpc.endpoint(Some("https://h:4317")).unwrap_err().to_string(),
            "invalid endpoint \"https://h:4317\": scheme \"https\" is not supported, use http"
        );
        assert_eq!(
            Protocol::Http.endpoint(Some("localhost:4318")).unwrap_err().to_string(),
            "invalid endpoint \"localhost:4318/v1/traces\": scheme \"localhost\" is not supported, use http or https"
        );
    }

    #[test]
    fn backoff_doubles_and_obeys_the_receiver() {
        let ms = Duration::from_millis;
        assert_eq!(backoff(0, None), ms(100));
        assert_eq!(backoff(3, None), ms(800));
        assert_eq!(backoff(40, None), MAX_BACKOFF);
        assert_eq!(backoff(3, Some(ms(2000))), ms(2000));
        assert_eq!(backoff(0, Some(Duration::from_secs(3600))), MAX_BACKOFF);
    }

    #[test]
    fn grpc_codes() {
        let retry = tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_secs(2)));
        let exhausted = tonic::Status::with_error_details(tonic::Code::ResourceExhausted, "full", retry);
        assert_eq!(
            grpc_outcome(&exhausted),
            Outcome::Retry {
                after: Some(Duration::from_secs(2)),
                reason: "gRPC ResourceExhausted: full".to_owned()
            }
        );
        assert!(matches!(
            grpc_outcome(&tonic::Status::unavailable("down")),
            Outcome::Retry { after: None, .. }
        ));
        assert!(matches!(
            grpc_outcome(&tonic::Status::invalid_argument("bad")),
            Outcome::Failed { .. }
        ));
    }
}
