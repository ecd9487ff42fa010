"""A real OAuth client against a running Portcullis: authlib's OAuth2Session
(password grant, refresh), plain requests the way FastAPI's OAuth2PasswordRequestForm
clients call /token, and PyJWT verifying the access token against the published JWKS.

usage: oauth_client.py BASE_URL EXPECTED_ALG
Prints one line per check; exits non-zero on the first failure.
"""
import sys

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session

base, alg = sys.argv[1], sys.argv[2]
token_url = f"{base}/token"


def check(cond, what):
    if not cond:
        print(f"FAIL {what}")
        sys.exit(1)
    print(f"ok   {what}")


meta = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=10).json()
check(meta["token_endpoint"].endswith("/token"), "metadata names the token endpoint")

# authlib, password grant (RFC 6749 section 4.3), public client.
session = OAuth2Session(client_id="cli", scope="items:read")
tok = session.fetch_token(token_url, username="alice", password="wonderland")
check(tok["token_type"] == "Bearer" and tok["scope"] == "items:read", "authlib password grant")

# The signature verifies against the JWKS (PyJWT fetches it and picks the kid).
jwks = jwt.PyJWKClient(f"{base}/.well-known/jwks.json")
key = jwks.get_signing_key_from_jwt(tok["access_token"])
claims = jwt.decode(
    tok["access_token"], key.key, algorithms=[alg], audience="api", issuer="http://issuer.test"
)
header = jwt.get_unverified_header(tok["access_token"])
check(header["alg"] == alg and header["typ"] == "at+jwt", f"header alg {alg}, typ at+jwt")
check(claims["sub"] == "alice" and claims["scope"] == "items:read", "claims verified by PyJWT")
for name in ("iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "roles"):
    check(name in claims, f"RFC 9068 claim {name}")

# The token opens the protected route through the session.
r = session.get(f"{base}/items/1")
check(r.status_code == 200, "protected route with the token")

# A tampered token is refused by PyJWT.
head, payload, sig = tok["access_token"].split(".")
try:
    jwt.decode(f"{head}.{payload[:-2]}AA.{sig}", key.key, algorithms=[alg], audience="api")
    check(False, "tampered token refused by PyJWT")
except jwt.InvalidTokenError:
    check(True, "tampered token refused by PyJWT")

# Refresh (RFC 6749 section 6) through authlib: rotated.
new = session.refresh_token(token_url, refresh_token=tok["refresh_token"])
check(new["refresh_token"] != tok["refresh_token"], "authlib refresh rotates the refresh token")
jwt.decode(
    new["access_token"],
    jwks.get_signing_key_from_jwt(new["access_token"]).key,
    algorithms=[alg],
    audience="api",
)
check(True, "refreshed token verifies")

# The old refresh token is spent: reuse is refused.
r = requests.post(
    token_url,
    data={"grant_type": "refresh_token", "refresh_token": tok["refresh_token"], "client_id": "cli"},
    timeout=10,
)
check(r.status_code == 400 and r.json()["error"] == "invalid_grant", "refresh token reuse refused")

# What FastAPI's OAuth2PasswordRequestForm clients send: a form, grant_type optional.
for data in (
    {"username": "johndoe", "password": "secret"},
    {"grant_type": "password", "username": "johndoe", "password": "secret", "scope": ""},
):
    r = requests.post(token_url, data=data, timeout=10)
    check(r.status_code == 200 and r.json()["token_type"].lower() == "bearer", f"FastAPI-style form {sorted(data)}")
r = requests.post(token_url, data={"username": "johndoe", "password": "nope"}, timeout=10)
check(r.status_code == 400 and r.json()["error"] == "invalid_grant", "wrong password refused")

# Revocation (RFC 7009) of the access token.
t = requests.post(token_url, data={"username": "johndoe", "password": "secret"}, timeout=10).json()
h = {"Authorization": f"Bearer {t['access_token']}"}
check(requests.get(f"{base}/items/1", headers=h, timeout=10).status_code == 200, "token works")
r = requests.post(f"{base}/revoke", data={"token": t["access_token"]}, timeout=10)
check(r.status_code == 200, "revocation accepted")
r = requests.get(f"{base}/items/1", headers=h, timeout=10)
check(r.status_code == 401 and "invalid_token" in r.headers.get("WWW-Authenticate", ""), "revoked token refused")
print("all checks passed")
