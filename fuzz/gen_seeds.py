#!/usr/bin/env python3
"""Writes the seed corpus (fuzz/corpus/<target>/<name>) and is the record of what each
seed is. Run from anywhere: python3 fuzz/gen_seeds.py. Tokens are HS256-signed with the
test suite's secret (tests/fixtures/hs256.secret) and expire in 2100, so the pipeline's
seeds stay valid; the jwt target's seeds are real-shaped tokens whose times are fixed
(its structured mode makes tokens valid at run time)."""

import base64
import hashlib
import hmac
import json
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SECRET = open(os.path.join(ROOT, "tests/fixtures/hs256.secret"), "rb").read().rstrip()
API_KEY = "fuzz-api-key-0123456789abcdef0123456789"
WEB_SECRET = "web-secret-for-the-fuzzer-0123456789"
EXP = 4102444800  # 2100-01-01
IAT = 1764600000


def b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def sign(header, claims, key=SECRET) -> str:
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    c = claims if isinstance(claims, bytes) else json.dumps(claims, separators=(",", ":")).encode()
    inp = f"{b64(h)}.{b64(c)}"
    sig = hmac.new(key, inp.encode(), hashlib.sha256).digest()
    return f"{inp}.{b64(sig)}"


HS = {"alg": "HS256", "typ": "JWT", "kid": "hs"}


def claims(sub, **extra):
    c = {"iss": "https://gw.fuzz", "aud": "api", "sub": sub, "iat": IAT, "exp": EXP}
    c.update(extra)
    return c


ALICE = sign(HS, claims("alice", scope="items:read items:write", roles=["admin"]))
BOB = sign(HS, claims("bob", scope="items:read"))
CAROL = sign(HS, claims("carol"))

seeds = {}


def seed(target, name, data):
    seeds.setdefault(target, {})[name] = data if isinstance(data, bytes) else data.encode()


# ------------------------------------------------------------------ canonical_path
for name, p in {
    "plain": "/public/hello",
    "query": "/items/42?x=1&y=%2e%2e",
    "dots": "/a/./b/../c/",
    "dot-end": "/a/b/..",
    "climb": "/../../etc/passwd",
    "encoded-dots": "/%2e%2e/admin",
    "encoded-dot-mixed": "/public/.%2E/admin",
    "encoded-slash": "/public/..%2fadmin",
    "double-encoded": "/public/%252e%252e/admin",
    "escaped-unreserved": "/public/%61dmin/%7Euser",
    "slashes": "/a//b///c//",
    "utf8": "/caf%C3%A9/\u00e9t\u00e9",
    "bad-utf8": "/x/%C3%28",
    "params": "/x;jsessionid=1/y",
    "backslash": "/public\\..\\admin",
    "lower-hex": "/a%3cb%3E",
    "pchars": "/!$&'()*+,=:@/\"<>|^`{}",
    "root": "/",
}.items():
    seed("canonical_path", name, p)

# ------------------------------------------------------------------ pipeline
H = "Host: gw.example\r\n"


def req(line, *headers, body=""):
    return line + "\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n" + body


for name, r in {
    "public-get": req("GET /public/hello?x=1 HTTP/1.1", "Host: gw.example"),
    "item-bob": req("GET /items/42 HTTP/1.1", "Host: gw.example", f"Authorization: Bearer {BOB}"),
    "item-head-bob": req("HEAD /items/42 HTTP/1.1", "Host: gw.example", f"Authorization: Bearer {BOB}"),
    "item-write-alice": req("POST /items/1 HTTP/1.1", "Host: gw.example", f"Authorization: Bearer {ALICE}",
                            "Content-Length: 5", body="hello"),
    "item-write-bob": req("DELETE /items/1 HTTP/1.1", "Host: gw.example", f"Authorization: bearer {BOB}"),
    "admin-bob": req("GET /admin/users HTTP/1.1", "Host: gw.example", f"Authorization: Bearer {BOB}"),
    "admin-alice": req("GET /admin/users HTTP/1.1", "Host: gw.example", f"Authorization: Bearer {ALICE}"),
    "private-carol": req("GET /private/x HTTP/1.1", "Host: gw.example", f"Authorization: Bearer {CAROL}"),
    "private-no-token": req("GET /private/x HTTP/1.1", "Host: gw.example"),
    "private-bad-token": req("GET /private/x HTTP/1.1", "Host: gw.example",
                             f"Authorization: Bearer {CAROL[:-3]}abc"),
    "optional-anon": req("GET /opt/a HTTP/1.1", "Host: gw.example"),
    "api-key": req("GET /items/7 HTTP/1.1", "Host: gw.example", f"X-API-Key: {API_KEY}"),
    "identity-spoof": req("GET /public/x HTTP/1.1", "Host: gw.example", "X-Auth-Subject: admin",
                          "X.Auth.Subject: admin", "x-auth-roles: admin"),
    "absolute-form": req("GET http://gw.example/public/x HTTP/1.1", "Host: gw.example"),
    "asterisk-form": req("OPTIONS * HTTP/1.1", "Host: gw.example"),
    "cl-te": req("POST /public/x HTTP/1.1", "Host: gw.example", "Content-Length: 4",
                 "Transfer-Encoding: chunked", body="0\r\n\r\nGET /admin/secret HTTP/1.1\r\nHost: gw.example\r\n\r\n"),
    "te-cl": req("POST /public/x HTTP/1.1", "Host: gw.example", "Transfer-Encoding: chunked",
                 "Content-Length: 60", body="0\r\n\r\nGET /admin/secret HTTP/1.1\r\nHost: gw.example\r\n\r\n"),
    "cl-cl": req("POST /public/x HTTP/1.1", "Host: gw.example", "Content-Length: 3", "Content-Length: 5",
                 body="hello"),
    "te-identity": req("POST /public/x HTTP/1.1", "Host: gw.example", "Transfer-Encoding: chunked, identity",
                       body="5\r\nhello\r\n0\r\n\r\n"),
    "chunked": req("POST /public/x HTTP/1.1", "Host: gw.example", "Transfer-Encoding: chunked",
                   body="5\r\nhello\r\n0\r\nx-trailer: 1\r\n\r\n"),
    "upgrade-h2c": req("GET /public/x HTTP/1.1", "Host: gw.example", "Connection: Upgrade, HTTP2-Settings",
                       "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAAQAAP__"),
    "upgrade-websocket": req("GET /public/ws HTTP/1.1", "Host: gw.example", "Connection: Upgrade",
                             "Upgrade: websocket", "Sec-WebSocket-Version: 13",
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="),
    "preflight": req("OPTIONS /private/x HTTP/1.1", "Host: gw.example", "Origin: https://app.example.com",
                     "Access-Control-Request-Method: POST",
                     "Access-Control-Request-Headers: authorization, content-type"),
    "preflight-lookalike": req("OPTIONS /public/x HTTP/1.1", "Host: gw.example",
                               "Origin: https://example.net.evil.com", "Access-Control-Request-Method: GET"),
    "cors-get": req("GET /public/x HTTP/1.1", "Host: gw.example", "Origin: https://a.example.net"),
    "encoded-dots": req("GET /public/%2e%2e/admin/x HTTP/1.1", "Host: gw.example"),
    "dots-to-admin": req("GET /public/../admin/x HTTP/1.1", "Host: gw.example"),
    "double-encoded": req("GET /public/%252e%252e/admin HTTP/1.1", "Host: gw.example"),
    "strip-prefix": req("GET /api/admin/x?y=1 HTTP/1.1", "Host: gw.example"),
    "host-route-anon": req("GET /public/x HTTP/1.1", "Host: internal.example"),
    "host-route-alice": req("GET /public/x HTTP/1.1", "Host: INTERNAL.example:8080",
                            f"Authorization: Bearer {ALICE}"),
    "pipelined": req("GET /public/a HTTP/1.1", "Host: gw.example")
    + req("GET /private/b HTTP/1.1", "Host: gw.example")
    + req("GET /items/3 HTTP/1.1", "Host: gw.example", f"Authorization: Bearer {BOB}"),
    "trace": req("TRACE /public/x HTTP/1.1", "Host: gw.example"),
    "connect": req("CONNECT gw.example:443 HTTP/1.1", "Host: gw.example:443"),
    "method-override": req("POST /public/x HTTP/1.1", "Host: gw.example", "X-HTTP-Method-Override: DELETE",
                           "X-Original-URL: /admin/x", "Content-Length: 0"),
    "forward-auth": req("GET /_portcullis/auth HTTP/1.1", "Host: gw.example", "X-Original-URI: /admin/x",
                        "X-Original-Method: GET", f"Authorization: Bearer {ALICE}"),
    "expect-continue": req("POST /private/x HTTP/1.1", "Host: gw.example", "Expect: 100-continue",
                           "Content-Length: 5", body="hello"),
    "expect-continue-alice": req("PUT /items/9 HTTP/1.1", "Host: gw.example", "Expect: 100-continue",
                                 f"Authorization: Bearer {ALICE}", "Content-Length: 5", body="hello"),
    "too-large-body": req("POST /public/x HTTP/1.1", "Host: gw.example", "Content-Length: 5000"),
    "http10": "GET /public/x HTTP/1.0\r\n\r\n",
    "http10-te": req("POST /public/x HTTP/1.0", "Transfer-Encoding: chunked", body="0\r\n\r\n"),
    "connection-authorization": req("GET /items/1 HTTP/1.1", "Host: gw.example", "Connection: close, Authorization",
                                    f"Authorization: Bearer {BOB}"),
    "connection-hop": req("GET /public/x HTTP/1.1", "Host: gw.example", "Connection: x-fuzz-route, keep-alive",
                          "Keep-Alive: timeout=5", "TE: trailers, deflate"),
    "obs-fold": "GET /public/x HTTP/1.1\r\nHost: gw.example\r\nX-A: 1\r\n  folded\r\n\r\n",
    "bare-lf": "GET /public/x HTTP/1.1\nHost: gw.example\n\n",
    "space-before-colon": "GET /public/x HTTP/1.1\r\nHost : gw.example\r\n\r\n",
    "underscore": req("GET /public/x HTTP/1.1", "Host: gw.example", "X_Auth_Subject: admin"),
    "two-authorization": req("GET /private/x HTTP/1.1", "Host: gw.example", f"Authorization: Bearer {ALICE}",
                             f"Authorization: Bearer {BOB}"),
    "long-target": req("GET /public/" + "a" * 9000 + " HTTP/1.1", "Host: gw.example"),
    "no-host": "GET /public/x HTTP/1.1\r\n\r\n",
    "h2-preface": "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
}.items():
    seed("pipeline", name, r)

# ------------------------------------------------------------------ jwt
NOW = {"iss": "https://gw.fuzz", "aud": "api", "sub": "alice", "iat": IAT, "exp": IAT + 900}
for name, tok in {
    "valid-shape": sign(HS, NOW),
    "no-kid": sign({"alg": "HS256"}, NOW),
    "at-jwt": sign({"alg": "HS256", "typ": "at+jwt", "kid": "hs"}, dict(NOW, scope="items:read", client_id="web")),
    "alg-none": b64(json.dumps({"alg": "none"}).encode()) + "." + b64(json.dumps(NOW).encode()) + ".",
    "alg-confusion": sign({"alg": "HS256", "kid": "rs"}, NOW,
                          key=open(os.path.join(ROOT, "tests/fixtures/rs256.pub"), "rb").read()),
    "rs256-header": sign({"alg": "RS256", "kid": "rs"}, NOW),
    "iss-array": sign(HS, dict(NOW, iss=["https://evil.example", "https://gw.fuzz"])),
    "fraction": sign(HS, dict(NOW, iat=IAT + 0.75, exp=IAT + 900.5)),
    "crit": sign(dict(HS, crit=["exp"]), NOW),
    "enc": sign(dict(HS, enc="A256GCM"), NOW),
    "typ-other": sign(dict(HS, typ="secevent+jwt"), NOW),
    "garbage": "eyJ.eyJ.",
}.items():
    seed("jwt", "T-" + name, "T" + tok)
# J mode: `NOW` in the claims is replaced by the current time when the target runs.
VALID = b'"iss":"https://gw.fuzz","aud":"api","sub":"alice","iat":NOW,"exp":NOW'
for name, (h, c) in {
    "valid-now": (b'{"alg":"HS256","typ":"JWT","kid":"hs"}', b"{" + VALID + b',"scope":"items:read"}'),
    "iss-array-now": (b'{"alg":"HS256"}',
                      b'{"iss":["https://evil.example","https://gw.fuzz"],"aud":"api","sub":"a","iat":NOW,"exp":NOW}'),
    "fraction-now": (b'{"alg":"HS256"}', b'{"iss":"https://gw.fuzz","aud":"api","sub":"a","iat":NOW.75,"exp":NOW.5}'),
    "nbf-future": (b'{"alg":"HS256"}', b"{" + VALID + b',"nbf":NOW9}'),
    "typ-secevent": (b'{"alg":"HS256","typ":"secevent+jwt"}', b"{" + VALID + b"}"),
    "enc-header": (b'{"alg":"HS256","enc":"A256GCM"}', b"{" + VALID + b"}"),
    "duplicate-exp": (b'{"alg":"HS256"}', b"{" + VALID + b',"exp":1}'),
    "duplicate-iss": (b'{"alg":"HS256"}', b'{"iss":"https://gw.fuzz",' + VALID[len(b'"iss":"https://gw.fuzz",'):]
                      .replace(b'"aud"', b'"iss":"https://evil.example","aud"') + b"}"),
    "huge-numbers": (json.dumps(HS).encode(), json.dumps(dict(NOW, exp=1e300, iat=-1, nbf=18446744073709551616)).encode()),
    "aud-array": (json.dumps(HS).encode(), b"{" + VALID.replace(b'"aud":"api"', b'"aud":["x","api"]') + b"}"),
    "nested": (json.dumps(HS).encode(), json.dumps(dict(NOW, sub={"a": [1, 2, {"b": None}]}, scope=["a", 1])).encode()),
}.items():
    seed("jwt", "J-" + name, b"J" + h + b"\0" + c)
seed("jwt", "S-structured", bytes(range(256)))

# ------------------------------------------------------------------ token_form
basic = lambda i, s: "Basic " + base64.b64encode(f"{i}:{s}".encode()).decode()
for name, d in {
    "F-password": "Fgrant_type=password&username=alice&password=wonderland&scope=items%3Aread+items%3Awrite",
    "F-refresh": "Fgrant_type=refresh_token&refresh_token=abc.def&client_id=cli",
    "F-duplicate": "Fscope=a&scope=b",
    "F-empty-values": "Fa=&b&&=c&d=%zz&e=%E2%82%AC+%2B",
    "B-basic-web": "B" + basic("web", WEB_SECRET) + "\0grant_type=client_credentials&scope=items%3Aread",
    "B-basic-wrong": "B" + basic("web", "nope") + "\0grant_type=client_credentials",
    "B-basic-escaped": "B" + basic("w%65b", WEB_SECRET.replace("-", "%2D")) + "\0grant_type=client_credentials",
    "B-post-web": f"B\0grant_type=client_credentials&client_id=web&client_secret={WEB_SECRET}",
    "B-both-methods": "B" + basic("web", WEB_SECRET) + f"\0client_id=web&client_secret={WEB_SECRET}",
    "B-public": "B\0grant_type=password&client_id=cli&username=a&password=b",
    "B-public-empty-secret": "B" + basic("cli", "") + "\0grant_type=password",
    "B-default": "B\0grant_type=password&username=a&password=b",
    "B-secret-only": f"B\0client_secret={WEB_SECRET}",
    "B-bearer": "BBearer abc\0grant_type=password",
}.items():
    seed("token_form", name, d)
seed("token_form", "S-pairs", bytes(range(128)))

# ------------------------------------------------------------------ cors_origin
for name, d in {
    "R-exact": "Rhttps://app.example.com\n=\nhttps://app.example.com",
    "R-wildcard-lookalike": "Rcredentials\nhttps://*.example.com\n=\nhttps://example.com.evil.net",
    "R-wildcard-sub": "Rhttps://*.example.com\n=\nhttps://a.b.example.com",
    "R-wildcard-bare": "Rhttps://*.example.com\n=\nhttps://example.com",
    "R-wildcard-port": "Rhttps://*.example.com:8443\n=\nhttps://a.example.com:8443",
    "R-any": "R*\n=\nnull",
    "R-null": "Rnull\n=\nnull",
    "R-userinfo": "Rhttps://*.example.com\n=\nhttps://evil.net@a.example.com",
    "P-preflight": "Phttps://app.example.com\n=\nhttps://app.example.com\nPOST\ncontent-type, authorization",
    "P-denied-header": "Pcredentials\nhttps://*.example.net\n=\nhttps://x.example.net\nGET\nx-secret",
}.items():
    seed("cors_origin", name, d)
seed("cors_origin", "L-lookalike", bytes(range(1, 200)))

# ------------------------------------------------------------------ config
seed("config", "bundled-gateway", open(os.path.join(ROOT, "gateway.toml"), "rb").read())
seed("config", "hs256-routes", """
[server]
listen = "127.0.0.1:0"
max_header_bytes = "8KiB"
request_timeout = "2s"
trusted_proxies = ["10.0.0.0/8", "192.0.2.7"]
forward_auth_path = "/_portcullis/auth"
[tokens]
issuer = "https://gw.fuzz"
audiences = ["api"]
leeway = "30s"
max_lifetime = "1h"
[[tokens.keys]]
kid = "hs"
alg = "HS256"
secret_file = "hs256.secret"
[[tokens.keys]]
kid = "rs"
alg = "RS256"
public_key = "rs256.pub"
[roles]
admin = ["items:read", "items:write"]
[identity]
claim_headers = { email = "x-auth-email" }
[[api_keys]]
sha256 = "%s"
subject = "robot"
scopes = ["items:read"]
[cors]
allow_origins = ["https://app.example.com", "https://*.example.net"]
allow_credentials = true
[rate_limits.default]
key = "subject"
rate = "100/1s"
burst = 200
[[upstreams]]
name = "up"
url = "http://127.0.0.1:9000/base"
preserve_host = true
[[routes]]
path = "/items/{id}"
methods = ["GET"]
upstream = "up"
scopes = ["items:read"]
request_headers = { set = { "x-route" = "item" }, remove = ["x-debug"] }
[[routes]]
path = "/api/**"
strip_prefix = "/api"
host = "api.example"
upstream = "up"
auth = "optional"
cors = { allow_origins = ["*"] }
""" % hashlib.sha256(API_KEY.encode()).hexdigest())
seed("config", "issuers", """
[[issuers]]
issuer = "https://idp.example"
jwks_url = "https://idp.example/jwks.json"
audiences = ["api"]
algorithms = ["RS256", "ES256"]
scope_claim = "scp"
roles_claim = "realm_access.roles"
[[upstreams]]
name = "e"
echo = true
[[routes]]
path = "/**"
upstream = "e"
rate_limit = "none"
""")
seed("config", "errors", """
[server]
listen = "nowhere"
max_header_bytes = "0"
request_timeout = "0s"
unknown = 1
[[routes]]
path = "/a/../b"
upstream = "missing"
methods = ["get"]
[rate_limits.x]
key = "bogus"
rate = "5/0s"
""")
seed("config", "syntax-error", "[server\nlisten = ")

for target, files in seeds.items():
    d = os.path.join(HERE, "corpus", target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    print(f"{target}: {len(files)} seeds")
