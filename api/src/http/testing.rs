//! Test support: an [`AppState`] from a config text on a fresh SQLite file, wired as `serve`
//! wires it (engine metrics and the pipeline collector in the registry, the alert runtime read
//! from the database), with a fixed clock; and requests through [`app`] with `oneshot`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use prometheus_client::registry::Registry;
use serde_json::Value;
use slis::Timestamp;
use tower::ServiceExt;
use tracebudget_alerting::deliver::AlertingMetrics;
use tracebudget_alerting::store::AlertStore;
use tracebudget_engine::collector::PipelineCollector;
use tracebudget_engine::metrics::EngineMetrics;
use tracebudget_engine::pipeline::Pipeline;
use tracebudget_engine::store::Db;

use super::app;
use super::refusal::GuardMetrics;
use super::state::AppState;
use crate::app::state::Live;

/// A state over its own SQLite file, removed on drop.
#[derive(Debug)]
pub struct TestApp {
    pub state: AppState,
    dir: PathBuf,
}

/// One answer: status, headers and the body (JSON when it parses as JSON, else a string).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestApp {
    /// `text` must have no `[storage]` section: the SQLite file is added here.
    pub async fn new(text: &str, clock: fn() -> Timestamp) -> TestApp {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        // As `serve` does: the notifiers' TLS runs on ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = std::env::temp_dir().join(format!(
            "tracebudget-api-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the test directory");
        let text = format!(
            "{text}\n[storage]\nurl = \"sqlite://{}/tracebudget.db\"\n",
            dir.display()
        );
        // On disk, so that a reload reads it again.
        let file = dir.join("test.toml");
        std::fs::write(&file, &text).expect("write the test config");
        let config = crate::app::config::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let db = Db::open(&config.storage.url.0).await.expect("open the test database");
        db.migrate().await.expect("migrate the test database");
        let metrics = Arc::new(EngineMetrics::default());
        let pipeline = Arc::new(Mutex::new(Pipeline::new(
            config.journeys.clone(),
            &config.alerting.slos,
            &config.ingest,
            metrics.clone(),
        )));
        let mut registry = Registry::with_prefix("tracebudget");
        metrics.register(&mut registry);
        registry.register_collector(Box::new(PipelineCollector {
            pipeline: pipeline.clone(),
        }));
        let alerting_metrics = Arc::new(AlertingMetrics::default());
        alerting_metrics.register(&mut registry);
        let alerts = crate::app::alerts::start(
            Arc::new(config.alerting.clone()),
            config.journeys.0.iter().map(|j| j.name.clone()).collect(),
            "http://tracebudget.test".into(),
            AlertStore::new(db.pool.clone()),
            alerting_metrics,
        )
        .await
        .expect("start the alert runtime");
        let reloads = Arc::new(crate::app::reload::ReloadMetrics::default());
        reloads.register(&mut registry);
        let guard = Arc::new(GuardMetrics::default());
        guard.register(&mut registry);
        let state = AppState {
            registry: Arc::new(registry),
            pipeline,
            live: Arc::new(Live::new(Arc::new(config))),
            alerts,
            db,
            reloads,
            guard,
            clock,
        };
        TestApp { state, dir }
    }

    /// Sends one request through a fresh [`app`].
    pub async fn request(&self, method: Method, path: &str, token: Option<&str>, body: Option<&str>) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        self.send(method, path, &headers, body).await
    }

    /// Sends one request with exactly these headers (and `Content-Length` with a body, as a
    /// client over the network sends it) through a fresh [`app`].
    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(b) = body {
            req = req.header("content-length", b.len());
        }
        let req = req
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .expect("a valid request");
        let res = app(self.state.clone()).oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("read the body").to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
        Reply {
            status,
            headers,
            body,
            text,
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
