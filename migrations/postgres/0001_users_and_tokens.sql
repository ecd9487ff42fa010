-- Users, refresh tokens and revoked access tokens (PostgreSQL).
CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    roles         TEXT    NOT NULL DEFAULT '',   -- space-separated
    disabled      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,               -- seconds since the epoch
    updated_at    BIGINT NOT NULL
);

-- Refresh tokens are stored as SHA-256 digests only. Every rotation adds a row to the
-- same family; presenting a used token again revokes the whole family.
CREATE TABLE refresh_tokens (
    token_hash TEXT    PRIMARY KEY,
    family_id  TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    revoked    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

-- Revoked access tokens, by jti, until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti        TEXT    PRIMARY KEY,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
