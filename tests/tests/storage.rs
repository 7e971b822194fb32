//! `tracebudget migrate` through the real binary: a fresh SQLite file is created and migrated
//! once; a second run finds nothing to do (issue #4, migrations are idempotent).

use tracebudget_tests::{TempDir, run};

#[test]
fn migrate_creates_the_sqlite_file_and_is_idempotent() {
    let dir = TempDir::new("migrate");
    let db = dir.path().join("state").join("tracebudget.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let url = format!("sqlite://{}", db.display());
    let config = dir.write(
        "tracebudget.toml",
        &format!("[storage]\nurl = \"{url}\"\n\n[[journeys]]\nname = \"j\"\nservice = \"frontend\"\n"),
    );
    let first = run(&["migrate", "--config", config.to_str().unwrap()]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        format!(
            "{url}: applied 1 config versions\n{url}: applied 2 sli buckets\n{url}: applied 3 sli count blocks\n{url}: applied 4 alerting\n{url}: applied 5 jetstream\n"
        )
    );
    assert!(db.exists(), "the embedded default creates its file");
    let second = run(&["migrate", "--config", config.to_str().unwrap()]);
    assert!(second.status.success());
    assert_eq!(String::from_utf8_lossy(&second.stdout), format!("{url}: up to date\n"));
}

#[test]
fn an_unusable_database_is_a_clear_error() {
    let dir = TempDir::new("migrate");
    let config = dir.write(
        "tracebudget.toml",
        "[storage]\nurl = \"postgres://tb:s3cret@127.0.0.1:1/slo\"\n",
    );
    let out = run(&["migrate", "--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.starts_with("error: cannot open the database postgres://tb:<redacted>@127.0.0.1:1/slo: "),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"));
}
