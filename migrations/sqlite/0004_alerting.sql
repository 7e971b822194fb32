-- Alerting state, so a restart neither re-pages nor forgets (times are epoch milliseconds,
-- structured values JSON text).

-- Firing alerts, and resolved ones whose notice is still owed to a receiver.
CREATE TABLE alert_state (
    fingerprint   TEXT   NOT NULL PRIMARY KEY,
    slo           TEXT   NOT NULL,
    state         TEXT   NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- Notification groups: their alerts, what the receiver was last told, their timers.
CREATE TABLE alert_groups (
    id            TEXT   NOT NULL PRIMARY KEY,
    state         TEXT   NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- Every start and end of an alert, with the alert as it was then (numbers, exemplars).
CREATE TABLE alert_history (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT    NOT NULL,
    slo         TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    alertname   TEXT    NOT NULL,
    event       TEXT    NOT NULL,
    at_ms       BIGINT  NOT NULL,
    alert       TEXT    NOT NULL
);
CREATE INDEX alert_history_at ON alert_history (at_ms);

-- The durable outbox and the notification log: one row per notification, `id` its idempotency
-- key; `state` pending → delivered | given_up. Per (receiver, group_key) rows go out in `seq` order.
CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    receiver        TEXT    NOT NULL,
    group_key       TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    created_at_ms   BIGINT  NOT NULL,
    state           TEXT    NOT NULL,
    attempts        BIGINT  NOT NULL,
    next_attempt_ms BIGINT  NOT NULL,
    last_error      TEXT,
    done_at_ms      BIGINT
);
CREATE INDEX outbox_pending ON outbox (state, next_attempt_ms);
-- The head of each group: the oldest pending row per (receiver, group_key).
CREATE INDEX outbox_group_order ON outbox (receiver, group_key, state, seq);

-- Silences: label matchers (JSON array of strings), when, who and why.
CREATE TABLE silences (
    id            TEXT   NOT NULL PRIMARY KEY,
    matchers      TEXT   NOT NULL,
    starts_at_ms  BIGINT NOT NULL,
    ends_at_ms    BIGINT NOT NULL,
    created_by    TEXT   NOT NULL,
    comment       TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- When each [[reports]] entry last ran.
CREATE TABLE report_runs (
    name        TEXT   NOT NULL PRIMARY KEY,
    last_run_ms BIGINT NOT NULL
);
