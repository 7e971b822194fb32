-- Count buckets packed by block (engine/src/store/block.rs): the minute buckets of a UTC hour in
-- one row (width_ms = 3600000), the hour buckets of a UTC day in one row (width_ms = 86400000),
-- each row rewritten whole when one of its buckets changes. A restore of 30 days reads ~37 rows
-- per journey instead of ~1,100.
-- `data` is binary: format 1, bucket width, the series names, then per bucket its index in the
-- block and [total, bad] per series, all as LEB128 varints.
--
-- sli_counts (0002) is kept: rows a 0002 binary wrote are read at the next start-up and moved
-- into blocks by its first flush, which deletes them in the same transaction.
CREATE TABLE sli_count_blocks (
    instance TEXT   NOT NULL,
    journey  TEXT   NOT NULL,
    block_ms BIGINT NOT NULL,
    width_ms BIGINT NOT NULL,
    data     BLOB   NOT NULL,
    PRIMARY KEY (instance, journey, block_ms, width_ms)
);
