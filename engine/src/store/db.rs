//! The database: SQLite (embedded, created on first run) or PostgreSQL, chosen by
//! `[storage] url`. Migrations are embedded in the binary, one folder per backend
//! (`migrations/sqlite`, `migrations/postgres`), and run at start-up or by `tracebudget migrate`.
//! Queries are runtime queries (no compile-time checking, so builds need no database).

use std::collections::HashSet;
use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migrate, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AnyPool, ConnectOptions, PgPool, Row, SqlitePool};

static SQLITE: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("../migrations/postgres");

/// How long opening the database may take before start-up fails with the reason.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("storage url {0} is neither sqlite://PATH nor postgres://…")]
    Scheme(String),
    #[error("cannot open the database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("cannot migrate the database {url}: {source}")]
    Migrate {
        url: String,
        source: sqlx::migrate::MigrateError,
    },
    #[error("database query failed ({what}): {source}")]
    Query { what: &'static str, source: sqlx::Error },
}

/// An open, migrated-or-not database.
#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    /// The same database through sqlx's own driver, for the SLI tables (flushes and the restore):
    /// rows and values skip the Any layer's conversion. Connections of its own (opened on first
    /// use, closed when idle), in WAL mode with `synchronous = NORMAL` on SQLite like `pool`.
    pub typed: Typed,
    pub backend: Backend,
    /// The URL with any password replaced, for messages and logs.
    pub url: String,
}

/// A pool of sqlx's typed driver for the backend.
#[derive(Debug, Clone)]
pub enum Typed {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Connections of the typed pool: a restore reads counts and histograms side by side; flushes
/// write one at a time.
const TYPED_CONNECTIONS: u32 = 2;
/// Rows a SQLite connection's worker thread reads ahead of its caller (sqlx's default is 50).
const ROW_BUFFER: usize = 1_024;
/// How much of a SQLite file the typed connections map into memory (a restore reads it all).
const MMAP_BYTES: u64 = 1 << 30;

/// The URL as it may be shown ([`slis::config::redact_url`]: `postgres://user:<redacted>@host/db`,
/// any query redacted too, as it can hold `password=`).
pub fn redact(url: &str) -> String {
    slis::config::redact_url(url)
}

impl Db {
    /// Opens the database; a SQLite file is created when missing.
    pub async fn open(url: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let shown = redact(url);
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(DbError::Scheme(shown));
        };
        let connect = |source| DbError::Connect {
            url: shown.clone(),
            source,
        };
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)
            .map_err(connect)?
            .disable_statement_logging();
        // SQLite serialises writers anyway; one connection avoids "database is locked".
        let max = if backend == Backend::Sqlite { 1 } else { 8 };
        let pool = AnyPoolOptions::new()
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Write-ahead log: a commit appends instead of rewriting pages, readers do
                        // not block the writer. NORMAL syncs at checkpoints: a commit survives a
                        // crash of the process (kill -9), the last ones may not survive power loss.
                        sqlx::Executor::execute(&mut *conn, "PRAGMA journal_mode = WAL").await?;
                        sqlx::Executor::execute(&mut *conn, "PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .max_connections(max)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(connect)?;
        let idle = std::time::Duration::from_secs(30);
        let typed = match backend {
            Backend::Sqlite => Typed::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(TYPED_CONNECTIONS)
                    .min_connections(0)
                    .idle_timeout(idle)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_lazy_with(
                        SqliteConnectOptions::from_str(&url)
                            .map_err(connect)?
                            // Rows the worker thread may read ahead of the restore: fewer hand-offs.
                            .journal_mode(SqliteJournalMode::Wal)
                            .synchronous(SqliteSynchronous::Normal)
                            .row_buffer_size(ROW_BUFFER)
                            // Reads map the file instead of copying it page by page.
                            .pragma("mmap_size", MMAP_BYTES.to_string())
                            .disable_statement_logging(),
                    ),
            ),
            Backend::Postgres => Typed::Postgres(
                PgPoolOptions::new()
                    .max_connections(TYPED_CONNECTIONS)
                    .min_connections(0)
                    .idle_timeout(idle)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_lazy_with(
                        PgConnectOptions::from_str(&url)
                            .map_err(connect)?
                            .disable_statement_logging(),
                    ),
            ),
        };
        Ok(Db {
            pool,
            typed,
            backend,
            url: shown,
        })
    }

    /// Closes every connection (both pools).
    pub async fn close(&self) {
        self.pool.close().await;
        match &self.typed {
            Typed::Sqlite(p) => p.close().await,
            Typed::Postgres(p) => p.close().await,
        }
    }

    pub(crate) fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE,
            Backend::Postgres => &POSTGRES,
        }
    }

    /// Runs the migrations not yet applied; returns their descriptions (empty: up to date).
    pub async fn migrate(&self) -> Result<Vec<String>, DbError> {
        let migrate = |source| DbError::Migrate {
            url: self.url.clone(),
            source,
        };
        let migrator = self.migrator();
        let table = &migrator.table_name;
        let mut conn = self.pool.acquire().await.map_err(|e| migrate(e.into()))?;
        conn.ensure_migrations_table(table).await.map_err(migrate)?;
        let applied: HashSet<i64> = conn
            .list_applied_migrations(table)
            .await
            .map_err(migrate)?
            .into_iter()
            .map(|m| m.version)
            .collect();
        drop(conn);
        migrator.run(&self.pool).await.map_err(migrate)?;
        Ok(migrator
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| format!("{} {}", m.version, m.description))
            .collect())
    }

    /// Records a config version unless it is the one recorded last; returns whether it was new.
    pub async fn record_config(&self, v: &ConfigVersion<'_>) -> Result<bool, DbError> {
        let query = |what| move |source| DbError::Query { what, source };
        let latest: Option<String> = sqlx::query("SELECT sha256 FROM config_versions ORDER BY id DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(query("read the latest config version"))?
            .map(|row| row.get(0));
        if latest.as_deref() == Some(v.sha256) {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO config_versions (sha256, applied_at_ms, applied_by, source, content) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(v.sha256)
        .bind(v.applied_at_ms)
        .bind(v.applied_by)
        .bind(v.source)
        .bind(v.content)
        .execute(&self.pool)
        .await
        .map_err(query("record the config version"))?;
        Ok(true)
    }

    /// Every recorded config version, oldest first: (sha256, applied_at_ms, applied_by, source).
    pub async fn config_versions(&self) -> Result<Vec<(String, i64, String, String)>, DbError> {
        let rows = sqlx::query("SELECT sha256, applied_at_ms, applied_by, source FROM config_versions ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(|source| DbError::Query {
                what: "list config versions",
                source,
            })?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect())
    }
}

/// One applied config, as audited.
#[derive(Debug, Clone, Copy)]
pub struct ConfigVersion<'a> {
    pub sha256: &'a str,
    pub applied_at_ms: i64,
    pub applied_by: &'a str,
    pub source: &'a str,
    pub content: &'a str,
}

/// Who applies a config from the command line: `user@host`.
pub fn local_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{user}@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::testing::Databases;

    #[tokio::test]
    async fn migrations_apply_once_on_both_backends() {
        let dbs = Databases::new("migrate").await;
        for url in dbs.urls() {
            let db = Db::open(&url).await.unwrap();
            // An old binary knew only the first migration; a new one on its database adds the rest.
            let old = Migrator {
                migrations: std::borrow::Cow::Owned(db.migrator().migrations[..1].to_vec()),
                ..Migrator::DEFAULT
            };
            old.run(&db.pool).await.unwrap();
            assert_eq!(
                db.migrate().await.unwrap(),
                ["2 sli buckets", "3 sli count blocks", "4 alerting", "5 jetstream"],
                "{url}"
            );
            assert_eq!(db.migrate().await.unwrap(), Vec::<String>::new(), "{url}: idempotent");
            // A second process opening the same database later finds nothing to do either.
            db.pool.close().await;
            assert!(
                Db::open(&url).await.unwrap().migrate().await.unwrap().is_empty(),
                "{url}"
            );
        }
        dbs.drop().await;
    }

    #[tokio::test]
    async fn config_versions_are_recorded_once_per_content_on_both_backends() {
        let dbs = Databases::new("versions").await;
        for url in dbs.urls() {
            let db = Db::open(&url).await.unwrap();
            db.migrate().await.unwrap();
            let v = |sha256, at| ConfigVersion {
                sha256,
                applied_at_ms: at,
                applied_by: "sre@host",
                source: "tracebudget.toml",
                content: "[server]",
            };
            assert!(db.record_config(&v("aaa", 1_000)).await.unwrap(), "{url}");
            assert!(
                !db.record_config(&v("aaa", 2_000)).await.unwrap(),
                "{url}: a restart with the same file"
            );
            assert!(db.record_config(&v("bbb", 3_000)).await.unwrap(), "{url}");
            assert!(
                db.record_config(&v("aaa", 4_000)).await.unwrap(),
                "{url}: going back is a change too"
            );
            let got: Vec<(String, i64)> = db
                .config_versions()
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.0, r.1))
                .collect();
            assert_eq!(
                got,
                [("aaa".into(), 1_000), ("bbb".into(), 3_000), ("aaa".into(), 4_000)],
                "{url}"
            );
        }
        dbs.drop().await;
    }

    #[tokio::test]
    async fn unknown_schemes_and_unreachable_servers_are_clear_errors() {
        let e = Db::open("mysql://x").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "storage url mysql://x is neither sqlite://PATH nor postgres://…"
        );
        let e = Db::open("postgres://tb:s3cret@127.0.0.1:1/slo")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot open the database postgres://tb:<redacted>@127.0.0.1:1/slo: "),
            "{e}"
        );
        assert!(!e.contains("s3cret"));
    }

    #[test]
    fn passwords_never_show() {
        let cases = [
            (
                "postgres://tb:s3cret@db:5432/slo",
                "postgres://tb:<redacted>@db:5432/slo",
            ),
            (
                "postgres://tb@db/slo?password=s3cret",
                "postgres://tb@db/slo?<redacted>",
            ),
            ("postgres://tb@db/slo", "postgres://tb@db/slo"),
            ("sqlite://tracebudget.db", "sqlite://tracebudget.db"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact(url), shown);
        }
    }
}
