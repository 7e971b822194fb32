-- SLI buckets, as each journey's windows hold them in memory (slis::window): minute buckets for
-- recent hours, coarser ones after (a coarser row replaces the finer rows inside its span).
-- `instance` is the writing engine ('' for a single instance); several share PostgreSQL.
-- Times are epoch milliseconds; a bucket spans [start_ms, start_ms + width_ms).

-- Exact weighted good/bad counts. `counts` is a JSON object, one entry per series of the journey:
-- "<slo> (<sli>)": [total, bad] for each SLO, "roots": [total, error] for all its root spans.
CREATE TABLE sli_counts (
    instance TEXT   NOT NULL,
    journey  TEXT   NOT NULL,
    start_ms BIGINT NOT NULL,
    width_ms BIGINT NOT NULL,
    counts   TEXT   NOT NULL,
    PRIMARY KEY (instance, journey, start_ms)
) WITHOUT ROWID;

-- Root latency of the journey: an HDR histogram in microseconds, hdrhistogram's V2 encoding
-- (deflated once the bucket is closed), empty when the bucket holds no sample.
CREATE TABLE sli_latency (
    instance  TEXT   NOT NULL,
    journey   TEXT   NOT NULL,
    start_ms  BIGINT NOT NULL,
    width_ms  BIGINT NOT NULL,
    histogram BLOB   NOT NULL,
    PRIMARY KEY (instance, journey, start_ms)
);
