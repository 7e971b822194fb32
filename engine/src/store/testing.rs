//! Test databases: a SQLite file in a fresh directory and a fresh database on the real PostgreSQL
//! (`TRACEBUDGET_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`), so the same
//! test runs against both backends. A missing PostgreSQL fails the test: `bash .ci/run` starts it.

use super::db::Db;

/// One SQLite and one PostgreSQL database, unique to the caller; `drop` removes both.
#[derive(Debug)]
pub struct Databases {
    sqlite_dir: std::path::PathBuf,
    pg_admin: String,
    pg_name: String,
}

impl Databases {
    pub async fn new(tag: &str) -> Databases {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let unique = format!("{tag}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let sqlite_dir = std::env::temp_dir().join(format!("tracebudget-db-{unique}"));
        std::fs::create_dir_all(&sqlite_dir).unwrap();
        let pg_admin = std::env::var("TRACEBUDGET_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        // Digits and underscores only: safe to splice into CREATE/DROP DATABASE.
        let pg_name = format!("tracebudget_test_{unique}");
        let admin = Db::open(&pg_admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is needed for this test ({e}); `bash .ci/run` starts it"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {pg_name}")))
            .execute(&admin.pool)
            .await
            .unwrap();
        Databases {
            sqlite_dir,
            pg_admin,
            pg_name,
        }
    }

    pub fn urls(&self) -> [String; 2] {
        let (base, _) = self.pg_admin.rsplit_once('/').unwrap();
        [
            format!("sqlite://{}/tracebudget.db", self.sqlite_dir.display()),
            format!("{base}/{}", self.pg_name),
        ]
    }

    pub async fn drop(self) {
        let admin = Db::open(&self.pg_admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.pg_name
        )))
        .execute(&admin.pool)
        .await
        .unwrap();
        let _ = std::fs::remove_dir_all(&self.sqlite_dir);
    }
}
