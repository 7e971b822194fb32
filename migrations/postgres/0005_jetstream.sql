-- JetStream exactly-once (engine/src/jetstream): written by the flusher in the same transaction as
-- the SLI blocks and histograms, so a crash at any instant leaves counts, positions and open
-- traces of one and the same instant.
--
-- Per (stream, partition) the newest stream sequence whose message is counted in the stored
-- buckets; `instance` is the instance that consumes the partition (a takeover claims the row, and
-- a flush of any other instance then fails instead of counting the partition twice).
CREATE TABLE jetstream_checkpoints (
    stream     TEXT    NOT NULL,
    part       INTEGER NOT NULL,
    seq        BIGINT  NOT NULL,
    instance   TEXT    NOT NULL,
    updated_ms BIGINT  NOT NULL,
    PRIMARY KEY (stream, part)
);

-- The assembler's open traces (and the ids of recently closed ones) of one partition at the same
-- instant, binary (engine/src/assembler/snapshot.rs): a restart or a takeover restores them, so
-- completeness is judged as if nothing had happened.
CREATE TABLE jetstream_open_traces (
    stream     TEXT    NOT NULL,
    part       INTEGER NOT NULL,
    instance   TEXT    NOT NULL,
    updated_ms BIGINT  NOT NULL,
    data       BYTEA   NOT NULL,
    PRIMARY KEY (stream, part)
);
