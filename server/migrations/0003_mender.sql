-- The Mender device API. Portable SQL, as 0001.

-- What an artifact says of itself (JSON: a Mender artifact's name and
-- device types), beside its hashes.
ALTER TABLE package_artifacts ADD COLUMN meta TEXT NOT NULL DEFAULT '';

-- A Mender device's identity (its identity data as canonical JSON, keys
-- sorted) and the public key it authenticated with first (pinned; empty
-- until then).
CREATE TABLE mender_identities (
    identity    TEXT PRIMARY KEY,
    device_id   TEXT NOT NULL UNIQUE,
    pubkey      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Tokens given to authenticated Mender devices (sha256 of the token).
CREATE TABLE mender_tokens (
    token_hash  TEXT PRIMARY KEY,
    device_id   TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX mender_tokens_by_device ON mender_tokens (device_id);

-- A Mender device's inventory, as JSON text.
CREATE TABLE mender_inventory (
    device_id   TEXT PRIMARY KEY,
    attributes  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Secrets the server makes for itself (hex), by name: the key its Mender
-- tokens (JWT, HS256) are signed with.
CREATE TABLE server_secrets (
    name    TEXT PRIMARY KEY,
    value   TEXT NOT NULL
);
