-- The server's schema. Portable SQL: the same text runs on SQLite and
-- PostgreSQL (TEXT and BIGINT only; times are unix seconds; flags 0/1;
-- ids are made by the server, never by the database).

CREATE TABLE devices (
    id              TEXT PRIMARY KEY,
    make            TEXT NOT NULL,
    model           TEXT NOT NULL,
    fw_version      TEXT NOT NULL,
    capability      TEXT NOT NULL,
    subscriber      TEXT NOT NULL,
    active          BIGINT NOT NULL,
    deactivated_at  BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    dm_password     TEXT NOT NULL,
    client_nonce    TEXT,
    server_nonce    TEXT
);
CREATE INDEX devices_by_model ON devices (make, model, fw_version);
CREATE INDEX devices_by_state ON devices (active, deactivated_at);

CREATE TABLE device_id_history (
    old_id      TEXT NOT NULL,
    new_id      TEXT NOT NULL,
    changed_at  BIGINT NOT NULL,
    PRIMARY KEY (old_id, changed_at)
);
CREATE INDEX device_id_history_by_new ON device_id_history (new_id);

CREATE TABLE firmware (
    make          TEXT NOT NULL,
    model         TEXT NOT NULL,
    version       TEXT NOT NULL,
    device_class  TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (make, model, version)
);

CREATE TABLE packages (
    id                TEXT PRIMARY KEY,
    make              TEXT NOT NULL,
    model             TEXT NOT NULL,
    from_version      TEXT NOT NULL,
    to_version        TEXT NOT NULL,
    size              BIGINT NOT NULL,
    sha256            TEXT NOT NULL,
    storage_key       TEXT NOT NULL,
    notes             TEXT NOT NULL,
    security_counter  BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    UNIQUE (make, model, from_version, to_version)
);

CREATE TABLE campaigns (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    package_id        TEXT NOT NULL REFERENCES packages (id),
    mandatory         BIGINT NOT NULL,
    max_postponements BIGINT NOT NULL,
    created_at        BIGINT NOT NULL
);

-- One row per device and package offered: the update's life.
CREATE TABLE updates (
    id             TEXT PRIMARY KEY,
    device_id      TEXT NOT NULL,
    package_id     TEXT NOT NULL REFERENCES packages (id),
    campaign_id    TEXT REFERENCES campaigns (id),
    state          TEXT NOT NULL,
    reason         TEXT NOT NULL,
    result_code    BIGINT,
    postponements  BIGINT NOT NULL,
    bytes_served   BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX updates_by_device ON updates (device_id, state);
CREATE INDEX updates_by_campaign ON updates (campaign_id, state);

-- Protocol sessions the check-in or a campaign registered.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    device_id    TEXT NOT NULL,
    protocol     TEXT NOT NULL,
    token_hash   TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    origin       TEXT NOT NULL,
    update_id    TEXT,
    state        TEXT NOT NULL,
    end_reason   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_by_device ON sessions (device_id, state);

-- Every status a device reported, in arrival order.
CREATE TABLE status_events (
    id          TEXT PRIMARY KEY,
    device_id   TEXT NOT NULL,
    update_id   TEXT,
    kind        TEXT NOT NULL,
    code        BIGINT,
    detail      TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX status_events_by_device ON status_events (device_id, at);

-- Notifications to send; a gateway marks them sent.
CREATE TABLE outbox (
    id           TEXT PRIMARY KEY,
    device_id    TEXT NOT NULL,
    campaign_id  TEXT,
    transport    TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    sent_at      BIGINT
);
CREATE INDEX outbox_unsent ON outbox (sent_at, created_at);

CREATE TABLE admin_tokens (
    token_hash  TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
