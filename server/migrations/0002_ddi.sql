-- hawkBit DDI (Direct Device Integration) devices, and the artifacts
-- other update clients install. Portable SQL, as 0001.

-- A package in the form another client installs (kind 'swu': a .swu for
-- swupdate carrying the package), stored beside it.
CREATE TABLE package_artifacts (
    package_id   TEXT NOT NULL REFERENCES packages (id),
    kind         TEXT NOT NULL,
    filename     TEXT NOT NULL,
    size         BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    sha1         TEXT NOT NULL,
    md5          TEXT NOT NULL,
    storage_key  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (package_id, kind)
);

-- hawkBit action ids are numbers: one per update a DDI device is offered.
CREATE TABLE ddi_actions (
    action_id   BIGINT PRIMARY KEY,
    update_id   TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

-- What a DDI device said about itself (configData), as JSON text.
CREATE TABLE ddi_attributes (
    device_id   TEXT PRIMARY KEY,
    attributes  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
