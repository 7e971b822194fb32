//! Issue 9 (hardening), TLS and auth: the receivers over (mutual) TLS with ingest tokens, the
//! API over HTTPS, slow clients cut off — against the real `serve`, the OpenTelemetry SDK's
//! exporters (Python) and reqwest, with certificates made by rcgen at test time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tracebudget_tests::{
    Json, Metrics, Server, TempDir, client_python, clients_dir, example_config_with, free_addrs, http_get,
    http_request, output_within,
};

const INGEST_OLD: &str = "tok-INGEST-old-SECRET";
const INGEST_NEW: &str = "tok-INGEST-new-SECRET";
const API_TOKEN: &str = "tok-API-SECRET";
const WEBHOOK_TOKEN: &str = "tok-WEBHOOK-SECRET";

/// A CA and what it signed, as PEM files in `dir`: `<name>-ca.pem`, and per leaf
/// `<leaf>.pem` + `<leaf>.key`.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(dir: &TempDir, name: &str) -> (Ca, PathBuf) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let path = dir.write(&format!("{name}-ca.pem"), &issuer.pem());
        (Ca { issuer }, path)
    }

    /// A leaf for `127.0.0.1` and `localhost`, for a server or a client.
    fn leaf(&self, dir: &TempDir, name: &str, usage: ExtendedKeyUsagePurpose) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        // Python's ssl (strict X.509 checks) wants the authority key identifier.
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (
            dir.write(&format!("{name}.pem"), &cert.pem()),
            dir.write(&format!("{name}.key"), &key.serialize_pem()),
        )
    }
}

fn install_ring() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A reqwest client that trusts only `ca`, presenting `identity` (cert, key) when given.
fn https_client(ca: &Path, identity: Option<(&Path, &Path)>) -> reqwest::blocking::Client {
    install_ring();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    let mut builder = reqwest::blocking::Client::builder()
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(10));
    if let Some((cert, key)) = identity {
        let mut pem = std::fs::read(cert).unwrap();
        pem.extend(std::fs::read(key).unwrap());
        builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

/// Runs tests/clients/otel_tls.py: one export of `spans` root spans; its `result`.
fn otel_export(protocol: &str, endpoint: &str, ca: &Path, client: (&Path, &Path), token: &str, spans: u32) -> String {
    let mut cmd = Command::new(client_python());
    cmd.arg(clients_dir().join("otel_tls.py"))
        .args(["--protocol", protocol, "--endpoint", endpoint, "--token", token])
        .arg("--ca")
        .arg(ca)
        .arg("--cert")
        .arg(client.0)
        .arg("--key")
        .arg(client.1)
        .args(["--spans", &spans.to_string(), "--export-timeout", "5"])
        // requests lets these override the exporter's own CA file (`certificate_file`).
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE");
    let out = output_within(&mut cmd, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = Json::parse(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "otel_tls.py printed no JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(json.num(&["spans"]), f64::from(spans));
    json.get("result").and_then(Json::as_str).unwrap().to_owned()
}

fn zipkin_span() -> String {
    let now_us = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros();
    format!(
        r#"[{{"traceId":"5af7183fb1d4cf5f5af7183fb1d4cf5f","id":"6b221d5bc9e6496c","name":"get /tls","timestamp":{},"duration":1000,"localEndpoint":{{"serviceName":"frontend"}}}}]"#,
        now_us - 2_000
    )
}

fn scrape(server: &mut Server) -> (Metrics, String) {
    let text = server.get("/metrics").unwrap().body;
    (Metrics::parse(&text).unwrap(), text)
}

#[test]
fn receivers_over_mutual_tls_need_a_client_certificate_of_the_ca_and_an_ingest_token() {
    let dir = TempDir::new("tls-ingest");
    let (ca, ca_pem) = Ca::new(&dir, "ours");
    let (server_cert, server_key) = ca.leaf(&dir, "server", ExtendedKeyUsagePurpose::ServerAuth);
    let client = ca.leaf(&dir, "exporter", ExtendedKeyUsagePurpose::ClientAuth);
    let (other_ca, _) = Ca::new(&dir, "other");
    let stranger = other_ca.leaf(&dir, "stranger", ExtendedKeyUsagePurpose::ClientAuth);

    let ports: [SocketAddr; 4] = free_addrs(4).try_into().unwrap();
    let [_, grpc, http, zipkin] = ports;
    let db = format!("sqlite://{}", dir.path().join("tracebudget.db").display());
    let tokens = format!("[ingest]\nauth_token = [\"{INGEST_OLD}\", \"{INGEST_NEW}\"]\n");
    let api_token = format!("api_token = \"{API_TOKEN}\"");
    let webhook = format!(
        "webhook = {{ url = \"https://hooks.shop.example/tracebudget\", format = \"generic\", timeout = \"10s\", bearer_token = \"{WEBHOOK_TOKEN}\" }}"
    );
    let config = example_config_with(
        &dir,
        ports,
        &db,
        &[
            ("[ingest]\n", &tokens),
            ("# api_token = \"…\"", &api_token),
            (
                "webhook = { url = \"https://hooks.shop.example/tracebudget\", format = \"generic\", timeout = \"10s\" }",
                &webhook,
            ),
        ],
    );
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[ingest.tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n",
        server_cert, server_key, ca_pem
    ));
    std::fs::write(&config, text).unwrap();
    let mut server = Server::start(&config, ports[0]);
    let client = (client.0.as_path(), client.1.as_path());

    // The SDK's exporters, over HTTPS and gRPC + TLS, each with one of the two tokens.
    assert_eq!(
        otel_export(
            "http",
            &format!("https://{http}/v1/traces"),
            &ca_pem,
            client,
            INGEST_NEW,
            5
        ),
        "SUCCESS"
    );
    assert_eq!(
        otel_export("grpc", &format!("https://{grpc}"), &ca_pem, client, INGEST_OLD, 7),
        "SUCCESS"
    );
    // A wrong token over gRPC: UNAUTHENTICATED (the exporter does not retry it).
    assert_eq!(
        otel_export("grpc", &format!("https://{grpc}"), &ca_pem, client, "tok-wrong", 3),
        "FAILURE"
    );

    let https = https_client(&ca_pem, Some(client));
    let traces = format!("https://{http}/v1/traces");
    let empty = r#"{"resourceSpans":[]}"#;
    let missing = https
        .post(&traces)
        .header("content-type", "application/json")
        .body(empty)
        .send()
        .unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        missing.text().unwrap(),
        r#"{"code":16,"message":"this receiver needs Authorization: Bearer <ingest.auth_token>"}"#
    );
    let wrong = https
        .post(&traces)
        .header("content-type", "application/json")
        .bearer_auth("tok-INGEST-old-SECRE")
        .body(empty)
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = https
        .post(format!("https://{zipkin}/api/v2/spans"))
        .header("content-type", "application/json")
        .bearer_auth(INGEST_OLD)
        .body(zipkin_span())
        .send()
        .unwrap();
    assert_eq!(right.status(), 202);
    let zipkin_unauthorized = https
        .post(format!("https://{zipkin}/api/v2/spans"))
        .body(zipkin_span())
        .send()
        .unwrap();
    assert_eq!(zipkin_unauthorized.status(), 401);

    // Without a client certificate, with one of another CA, and plain HTTP: refused in the
    // handshake, each counted once.
    let anonymous = https_client(&ca_pem, None)
        .post(&traces)
        .bearer_auth(INGEST_NEW)
        .body(empty)
        .send();
    assert!(anonymous.is_err(), "{anonymous:?}");
    let stranger = https_client(&ca_pem, Some((&stranger.0, &stranger.1)))
        .post(&traces)
        .bearer_auth(INGEST_NEW)
        .body(empty)
        .send();
    assert!(stranger.is_err(), "{stranger:?}");
    let plain = http_get(http, "/v1/traces", Duration::from_secs(5));
    assert!(
        plain.is_err(),
        "plain HTTP got an HTTP answer from a TLS port: {plain:?}"
    );

    let (m, metrics_text) = scrape(&mut server);
    let accepted = |receiver| m.get("tracebudget_spans_accepted_total", &[("receiver", receiver)]);
    assert_eq!(accepted("otlp_http"), Some(5.0));
    assert_eq!(accepted("otlp_grpc"), Some(7.0));
    assert_eq!(accepted("zipkin"), Some(1.0));
    let requests = |receiver, outcome| {
        m.get(
            "tracebudget_requests_total",
            &[("receiver", receiver), ("outcome", outcome)],
        )
    };
    assert_eq!(requests("otlp_http", "unauthorized"), Some(2.0));
    assert_eq!(requests("otlp_grpc", "unauthorized"), Some(1.0));
    assert_eq!(requests("zipkin", "unauthorized"), Some(1.0));
    assert_eq!(requests("otlp_http", "ok"), Some(1.0));
    assert_eq!(requests("otlp_grpc", "ok"), Some(1.0));
    let failures = |listener, reason| {
        m.get(
            "tracebudget_tls_handshake_failures_total",
            &[("listener", listener), ("reason", reason)],
        )
    };
    assert_eq!(failures("otlp_http", "no_client_cert"), Some(1.0));
    assert_eq!(failures("otlp_http", "bad_cert"), Some(1.0));
    assert_eq!(failures("otlp_http", "protocol"), Some(1.0));
    assert_eq!(failures("otlp_http", "timeout"), Some(0.0));
    for reason in ["no_client_cert", "bad_cert", "protocol", "timeout"] {
        assert_eq!(failures("otlp_grpc", reason), Some(0.0), "{reason}");
        assert_eq!(failures("zipkin", reason), Some(0.0), "{reason}");
    }

    // No secret in /metrics, nor anywhere in serve's log (to the end of a graceful stop).
    let status = server.signal_and_wait("TERM", Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", server.output_block());
    let log = server.output();
    for secret in [INGEST_OLD, INGEST_NEW, API_TOKEN, WEBHOOK_TOKEN, "SECRET"] {
        assert!(!metrics_text.contains(secret), "/metrics shows {secret}");
        assert!(!log.contains(secret), "the log shows {secret}:\n{log}");
    }
    assert!(log.contains("tls=true"), "{log}");
}

/// Reads from `stream` until the peer closes it (or 10 s pass); what arrived.
fn read_to_close(stream: &mut TcpStream) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    match stream.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server did not close the connection: {e} (got {got:?})"),
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn the_api_serves_https_and_slow_clients_are_cut_off_while_others_are_served() {
    let dir = TempDir::new("tls-api");
    let (ca, ca_pem) = Ca::new(&dir, "ours");
    let (server_cert, server_key) = ca.leaf(&dir, "server", ExtendedKeyUsagePurpose::ServerAuth);
    let ports: [SocketAddr; 4] = free_addrs(4).try_into().unwrap();
    let [api, _, http, _] = ports;
    let db = format!("sqlite://{}", dir.path().join("tracebudget.db").display());
    let timeouts = "[ingest]\nheader_read_timeout = \"1s\"\nbody_read_timeout = \"1s\"\n";
    let config = example_config_with(&dir, ports, &db, &[("[ingest]\n", timeouts)]);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[server.tls]\ncert = {server_cert:?}\nkey = {server_key:?}\nhandshake_timeout = \"1s\"\n"
    ));
    std::fs::write(&config, text).unwrap();
    let https = https_client(&ca_pem, None);
    let probe = |addr: SocketAddr| {
        https
            .get(format!("https://{addr}/readyz"))
            .send()
            .and_then(|r| Ok((r.status().as_u16(), r.text()?)))
            .map_err(std::io::Error::other)
    };
    let server = Server::start_probing(&config, api, &probe);
    let scrape = || {
        let r = https.get(format!("https://{api}/metrics")).send().unwrap();
        assert_eq!(r.status(), 200);
        Metrics::parse(&r.text().unwrap()).unwrap()
    };

    // Plain HTTP to the API's TLS port, and a connection that never starts its handshake.
    assert!(http_get(api, "/readyz", Duration::from_secs(5)).is_err());
    let mut silent = TcpStream::connect(api).unwrap();
    assert_eq!(read_to_close(&mut silent), "");

    // Slow loris: half a header line, then nothing. Meanwhile another client is served.
    let mut loris = TcpStream::connect(http).unwrap();
    loris.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x").unwrap();
    let normal = http_request(
        http,
        "POST",
        "/v1/traces",
        &[],
        Some(r#"{"resourceSpans":[]}"#),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(normal.status, 200, "{}", normal.body);
    assert_eq!(read_to_close(&mut loris), "", "the slow client got an answer");

    // A body that stops after 3 of its 100 bytes: 408 at its deadline, counted.
    let mut stalled = TcpStream::connect(http).unwrap();
    stalled
        .write_all(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"r",
        )
        .unwrap();
    let answer = read_to_close(&mut stalled);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.ends_with(r#"{"code":4,"message":"the request body was not complete within body_read_timeout (1s)"}"#),
        "{answer}"
    );

    // A keep-alive connection idle after its answer is closed too, but it did nothing wrong.
    let mut idle = TcpStream::connect(http).unwrap();
    let body = r#"{"resourceSpans":[]}"#;
    write!(
        idle,
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let answer = read_to_close(&mut idle);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let m = scrape();
    let timeouts = |listener, reason| {
        m.get(
            "tracebudget_http_timeouts_total",
            &[("listener", listener), ("reason", reason)],
        )
    };
    assert_eq!(timeouts("otlp_http", "header"), Some(1.0));
    assert_eq!(timeouts("otlp_http", "body"), Some(1.0));
    assert_eq!(timeouts("api", "header"), Some(0.0));
    assert_eq!(
        m.get(
            "tracebudget_requests_total",
            &[("receiver", "otlp_http"), ("outcome", "timeout")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "tracebudget_requests_total",
            &[("receiver", "otlp_http"), ("outcome", "ok")]
        ),
        Some(2.0)
    );
    let failures = |reason| {
        m.get(
            "tracebudget_tls_handshake_failures_total",
            &[("listener", "api"), ("reason", reason)],
        )
    };
    assert_eq!(failures("protocol"), Some(1.0));
    assert_eq!(failures("timeout"), Some(1.0));
    assert_eq!(failures("no_client_cert"), Some(0.0));
    // The receivers are plain: no TLS series for them.
    assert!(
        m.matching("tracebudget_tls_handshake_failures_total", &[("listener", "otlp_http")])
            .next()
            .is_none()
    );
    drop(server);
}
