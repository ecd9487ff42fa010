"""Browser sign-in as a real client does it: OIDC discovery, authlib's OAuth2Session
(authorization code + PKCE S256, nonce, refresh), requests acting as the browser on the
login and consent pages, and PyJWT verifying the ID token against the published JWKS.

usage: authlib_code.py BASE CLIENT_ID REDIRECT_URI
BASE is also the issuer. The client is public (no secret); REDIRECT_URI must be
registered for it. Signs in as johndoe / secret.
Prints one line per check; exits non-zero on the first failure.
"""
import base64
import hashlib
import sys
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import jwt
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

base, client_id, redirect_uri = sys.argv[1], sys.argv[2], sys.argv[3]
SCOPE = "openid profile items:read"


def check(cond, what, detail=None):
    if not cond:
        print(f"FAIL {what}")
        if detail is not None:
            print(f"     {detail}")
        sys.exit(1)
    print(f"ok   {what}")


def show(r):
    """A short description of a response, for failure messages."""
    body = r.text if len(r.text) < 600 else r.text[:600] + "..."
    return f"{r.status_code} Location={r.headers.get('Location')!r} body={body!r}"


class Forms(HTMLParser):
    """The forms of a page: id -> {action, method, hidden: [(name, value)], inputs, buttons}.
    HTMLParser unescapes attribute values (&amp; -> &), as a browser does."""

    def __init__(self, text):
        super().__init__()
        self.forms, self.current, self.error = {}, None, None
        self._in_error = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self.current = {
                "action": a.get("action", ""),
                "method": a.get("method", "get").lower(),
                "hidden": [],
                "inputs": [],
                "buttons": [],
            }
            self.forms[a.get("id", "")] = self.current
        elif tag == "input" and self.current is not None:
            self.current["inputs"].append(a)
            if a.get("type", "text").lower() == "hidden" and "name" in a:
                self.current["hidden"].append((a["name"], a.get("value", "")))
        elif tag == "button" and self.current is not None:
            self.current["buttons"].append(a)
        elif tag == "p" and "error" in a.get("class", "").split():
            self._in_error, self.error = True, ""

    def handle_endtag(self, tag):
        if tag == "form":
            self.current = None
        elif tag == "p":
            self._in_error = False

    def handle_data(self, data):
        if self._in_error:
            self.error += data


def session_cookie(browser):
    for c in browser.cookies:
        if c.name in ("portcullis-session", "__Host-portcullis-session"):
            return c.value
    return None


def input_named(form, name):
    return next((i for i in form["inputs"] if i.get("name") == name), None)


def page_headers(r, what):
    check(r.headers.get("Content-Type", "").startswith("text/html"), f"{what}: text/html", show(r))
    check("Content-Security-Policy" in r.headers, f"{what}: Content-Security-Policy header")
    check(
        r.headers.get("X-Frame-Options", "").upper() == "DENY",
        f"{what}: X-Frame-Options DENY",
        r.headers.get("X-Frame-Options"),
    )


def submit(browser, page, form, fields):
    """POST a form the way a browser does: to its action resolved against the page URL,
    its hidden fields followed by the user's fields, with the page's Origin."""
    check(form["method"] == "post", "form method is POST", form["method"])
    target = urljoin(page.url, form["action"])
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(page.url))
    return browser.post(
        target,
        data=form["hidden"] + fields,
        headers={"Origin": origin},
        allow_redirects=False,
        timeout=10,
    )


def authorize(browser, url, signed_in):
    """Walk the browser through /authorize until the 303 back to the client. Signs in on
    the login page unless signed_in (then a login page is a failure); allows on a consent
    page. Returns the Location of the final redirect."""
    r = browser.get(url, allow_redirects=False, timeout=10)
    forms = Forms(r.text) if r.status_code == 200 else None
    if not signed_in:
        check(r.status_code == 200 and "login" in forms.forms, "authorize shows the login page", show(r))
        page_headers(r, "login page")
        form = forms.forms["login"]
        names = [n for n, _ in form["hidden"]]
        check("csrf" in names, "login form has a hidden csrf field", names)
        user, pw = input_named(form, "username"), input_named(form, "password")
        check(user is not None and user.get("id") == "username", "login form: username input")
        check(
            pw is not None and pw.get("id") == "password" and pw.get("type") == "password",
            "login form: password input of type password",
        )
        check(
            any(b.get("name") == "action" and b.get("value") == "login" for b in form["buttons"]),
            "login form: submit button action=login",
        )
        before = session_cookie(browser)
        r = submit(
            browser,
            r,
            form,
            [("username", "johndoe"), ("password", "secret"), ("action", "login")],
        )
        after = Forms(r.text).forms if r.status_code == 200 else {}
        check(
            r.status_code == 303 or (r.status_code == 200 and "consent" in after),
            "login accepted (303, or the consent page)",
            f"{show(r)} error={Forms(r.text).error!r}",
        )
        cookie = next((c for c in r.raw.headers.getlist("Set-Cookie") if "portcullis-session=" in c), "")
        attrs = {a.strip().split("=")[0].lower(): a.strip() for a in cookie.split(";")[1:]}
        check(
            "httponly" in attrs and attrs.get("samesite", "").lower() == "samesite=lax",
            "login sets the portcullis-session cookie (HttpOnly, SameSite=Lax)",
            r.raw.headers.getlist("Set-Cookie"),
        )
        check(session_cookie(browser) is not None, "the browser holds the session cookie")
        if before is not None:
            check(session_cookie(browser) != before, "the session cookie is rotated at login")
        forms = Forms(r.text) if r.status_code == 200 else None
    else:
        check(
            not (r.status_code == 200 and "login" in forms.forms),
            "a signed-in browser is not asked to sign in again",
            show(r),
        )
    if r.status_code == 200 and "consent" in forms.forms:
        page_headers(r, "consent page")
        form = forms.forms["consent"]
        check(("action", "consent") in form["hidden"], "consent form: hidden action=consent")
        check(any(n == "csrf" for n, _ in form["hidden"]), "consent form has a hidden csrf field")
        values = {b.get("value") for b in form["buttons"] if b.get("name") == "decision"}
        check({"allow", "deny"} <= values, "consent form: allow and deny buttons", values)
        r = submit(browser, r, form, [("decision", "allow")])
    location = r.headers.get("Location", "")
    check(
        r.status_code == 303 and location.startswith(redirect_uri),
        "303 back to the redirect_uri",
        show(r),
    )
    return location


def response_params(location):
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


# 1. Discovery (OpenID Connect Discovery 1.0).
r = requests.get(f"{base}/.well-known/openid-configuration", timeout=10)
check(r.status_code == 200, "openid-configuration served", show(r))
meta = r.json()
check(meta.get("issuer") == base, "discovery issuer is BASE", meta.get("issuer"))
for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "end_session_endpoint", "jwks_uri"):
    check(isinstance(meta.get(name), str) and meta[name].startswith("http"), f"discovery {name}", meta.get(name))
check(meta.get("code_challenge_methods_supported") == ["S256"], "PKCE: S256 only", meta.get("code_challenge_methods_supported"))
check("code" in meta.get("response_types_supported", []), "response type code")
algs = [a for a in meta.get("id_token_signing_alg_values_supported", []) if a != "none"]
check(len(algs) > 0, f"ID token algorithms {algs}")
authorization_endpoint, token_endpoint = meta["authorization_endpoint"], meta["token_endpoint"]
userinfo_endpoint = meta["userinfo_endpoint"]
jwks = jwt.PyJWKClient(meta["jwks_uri"])


def userinfo_status(access_token):
    return requests.get(
        userinfo_endpoint, headers={"Authorization": f"Bearer {access_token}"}, timeout=10
    ).status_code


def new_session():
    session = OAuth2Session(
        client_id, redirect_uri=redirect_uri, scope=SCOPE, code_challenge_method="S256"
    )
    verifier, nonce = generate_token(48), generate_token(24)
    url, state = session.create_authorization_url(
        authorization_endpoint, code_verifier=verifier, nonce=nonce
    )
    return session, verifier, nonce, url, state


# 2. authlib builds the authorization request (PKCE S256, state, nonce).
session, verifier, nonce, url, state = new_session()
q = response_params(url)
check(
    q.get("code_challenge_method") == "S256" and q.get("response_type") == "code" and "nonce" in q,
    "authlib authorization URL with PKCE S256 and a nonce",
)

# 3. The browser signs in (and consents); the gateway redirects back with a code.
browser = requests.Session()
location = authorize(browser, url, signed_in=False)
params = response_params(location)
check("code" in params and params.get("state") == state, "code and the same state in the redirect", location)
check(params.get("iss") == base, "RFC 9207 iss in the redirect", params.get("iss"))

# 4. authlib redeems the code with the verifier.
tok = session.fetch_token(
    token_endpoint, authorization_response=location, state=state, code_verifier=verifier, timeout=10
)
check(tok.get("token_type") == "Bearer", "token_type Bearer", tok.get("token_type"))
check("id_token" in tok, "id_token issued for scope openid")
check("items:read" in tok.get("scope", "").split(), "scope contains items:read", tok.get("scope"))
check("refresh_token" in tok, "refresh_token issued")

# 5. The ID token verifies against the JWKS (OIDC Core 3.1.3.7).
id_token = tok["id_token"]
header = jwt.get_unverified_header(id_token)
check(header.get("alg") in algs, f"ID token alg {header.get('alg')} is advertised")
claims = jwt.decode(
    id_token,
    jwks.get_signing_key_from_jwt(id_token).key,
    algorithms=algs,
    audience=client_id,
    issuer=base,
    options={"require": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "azp"]},
    leeway=5,
)
check(True, "ID token signature, iss, aud, exp verified by PyJWT")
check(claims["sub"] == "johndoe", "ID token sub johndoe", claims["sub"])
check(claims["nonce"] == nonce, "ID token nonce matches the request")
check(claims["azp"] == client_id, "ID token azp is the client", claims["azp"])
check(
    isinstance(claims["auth_time"], int) and claims["auth_time"] <= time.time() + 5,
    "ID token auth_time",
    claims["auth_time"],
)
alg = header["alg"]
digest = {"384": hashlib.sha384, "512": hashlib.sha512}.get(alg[-3:], hashlib.sha256)
if alg == "EdDSA":
    digest = hashlib.sha512
h = digest(tok["access_token"].encode("ascii")).digest()
at_hash = base64.urlsafe_b64encode(h[: len(h) // 2]).rstrip(b"=").decode("ascii")
check(claims["at_hash"] == at_hash, "ID token at_hash matches the access token", (claims["at_hash"], at_hash))

# The access token is an RFC 9068 JWT for this client and user.
at_header = jwt.get_unverified_header(tok["access_token"])
at = jwt.decode(
    tok["access_token"],
    jwks.get_signing_key_from_jwt(tok["access_token"]).key,
    algorithms=algs,
    issuer=base,
    options={"verify_aud": False},
    leeway=5,
)
check(at_header.get("typ") == "at+jwt", "access token typ at+jwt", at_header.get("typ"))
check(
    at.get("sub") == "johndoe" and at.get("client_id") == client_id and at.get("gty") == "authorization_code",
    "access token: sub, client_id, gty authorization_code",
    {k: at.get(k) for k in ("sub", "client_id", "gty")},
)

# 6. UserInfo with the access token.
r = requests.get(userinfo_endpoint, headers={"Authorization": f"Bearer {tok['access_token']}"}, timeout=10)
check(r.status_code == 200 and r.json().get("sub") == "johndoe", "userinfo sub johndoe", show(r))
check(r.headers.get("Content-Type", "").startswith("application/json"), "userinfo is JSON")

# 7. Second use of the code: refused, and what the first use issued is revoked
# (RFC 6749 section 4.1.2; revocations reach other replicas on a 5 s tick).
code = params["code"]
r = requests.post(
    token_endpoint,
    data={
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "code_verifier": verifier,
    },
    timeout=10,
)
check(r.status_code == 400 and r.json().get("error") == "invalid_grant", "code reuse: 400 invalid_grant", show(r))
# The gateway that saw the replay revokes at once (other replicas within their sync).
status = userinfo_status(tok["access_token"])
check(status == 401, "code reuse revokes the first access token (userinfo 401)", status)
r = requests.post(
    token_endpoint,
    data={"grant_type": "refresh_token", "refresh_token": tok["refresh_token"], "client_id": client_id},
    timeout=10,
)
check(r.status_code == 400 and r.json().get("error") == "invalid_grant", "code reuse revokes the first refresh token", show(r))

# 8. A fresh authorization (the browser is still signed in) with the wrong verifier.
session2, verifier2, _, url2, state2 = new_session()
location2 = authorize(browser, url2, signed_in=True)
params2 = response_params(location2)
check("code" in params2 and params2.get("state") == state2, "second authorization: code and state", location2)
r = requests.post(
    token_endpoint,
    data={
        "grant_type": "authorization_code",
        "code": params2["code"],
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "code_verifier": generate_token(48),
    },
    timeout=10,
)
check(r.status_code == 400 and r.json().get("error") == "invalid_grant", "wrong code_verifier: 400 invalid_grant", show(r))

# 9. A third authorization, redeemed by authlib, then refreshed by authlib.
session3, verifier3, _, url3, state3 = new_session()
location3 = authorize(browser, url3, signed_in=True)
tok3 = session3.fetch_token(
    token_endpoint, authorization_response=location3, state=state3, code_verifier=verifier3, timeout=10
)
check("refresh_token" in tok3, "third authorization: refresh_token issued")
new = session3.refresh_token(token_endpoint, timeout=10)
check(
    new.get("access_token") and new["access_token"] != tok3["access_token"],
    "authlib refresh gives a new access token",
)
check(new.get("refresh_token") not in (None, tok3["refresh_token"]), "refresh rotates the refresh token")
check(userinfo_status(new["access_token"]) == 200, "refreshed access token opens userinfo")
print("all checks passed")
