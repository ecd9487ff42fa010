-- Browser sign-in (authorization code + PKCE, OpenID Connect): what replicas share.

-- Codes are stored as SHA-256 digests; single use (used_at), bound to the client,
-- the redirect URI, the PKCE challenge, the nonce and the scope. A second use revokes
-- what the first issued: the refresh family and the access token's jti.
CREATE TABLE auth_codes (
    code_hash      TEXT    PRIMARY KEY,
    client_id      TEXT    NOT NULL,
    redirect_uri   TEXT    NOT NULL,
    redirect_given INTEGER NOT NULL,
    code_challenge TEXT    NOT NULL DEFAULT '',
    nonce          TEXT    NOT NULL DEFAULT '',
    scope          TEXT    NOT NULL,
    subject        TEXT    NOT NULL,
    auth_time      INTEGER NOT NULL,
    family_id      TEXT    NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER,
    access_jti     TEXT,
    access_exp     INTEGER
);
CREATE INDEX auth_codes_expiry ON auth_codes (expires_at);

-- Sign-in sessions: the cookie's value is never stored, only its SHA-256 digest.
CREATE TABLE sessions (
    id_hash    TEXT    PRIMARY KEY,
    subject    TEXT    NOT NULL,
    auth_time  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Consent a user gave a client: the scopes granted (space-separated).
CREATE TABLE consents (
    subject    TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (subject, client_id)
);

-- Store-backed clients (`portcullis clients add`); secrets as SHA-256 digests.
-- Lists are space-separated.
CREATE TABLE clients (
    client_id                 TEXT    PRIMARY KEY,
    secret_sha256             TEXT,
    grants                    TEXT    NOT NULL,
    scopes                    TEXT    NOT NULL DEFAULT '',
    redirect_uris             TEXT    NOT NULL DEFAULT '',
    post_logout_redirect_uris TEXT    NOT NULL DEFAULT '',
    require_consent           INTEGER NOT NULL DEFAULT 1,
    created_at                INTEGER NOT NULL
);

-- External sign-in: an identity at a provider and the local user it maps to.
CREATE TABLE external_identities (
    provider   TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    username   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (provider, subject)
);

-- A verified email address, set by external sign-in (link by email).
ALTER TABLE users ADD COLUMN email TEXT;

-- Pending external sign-ins (state → what to resume), single use.
CREATE TABLE login_states (
    state_hash   TEXT    PRIMARY KEY,
    provider     TEXT    NOT NULL,
    nonce        TEXT    NOT NULL,
    verifier     TEXT    NOT NULL,
    browser_hash TEXT    NOT NULL,
    request      TEXT    NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX login_states_expiry ON login_states (expires_at);

-- Secrets shared by replicas (the CSRF key), made once by whichever starts first.
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
