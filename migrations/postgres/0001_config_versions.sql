-- Every config the engine started with or reloaded, so an SLO change can be audited:
-- what (the file's text and its SHA-256), when (epoch ms), who (user@host, or the API caller).
CREATE TABLE config_versions (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256        TEXT   NOT NULL,
    applied_at_ms BIGINT NOT NULL,
    applied_by    TEXT   NOT NULL,
    source        TEXT   NOT NULL,
    content       TEXT   NOT NULL
);
CREATE INDEX config_versions_applied ON config_versions (applied_at_ms);
