#!/usr/bin/env python3
"""A real OAuth 2.0 authorization server for the integration tests.

Built on authlib's Flask integration: device authorization grant (RFC 8628),
authorization code grant (RFC 6749 section 4.1) with PKCE (RFC 7636, S256
required) for loopback redirect URIs (RFC 8252 section 7.3), refresh token grant (RFC 6749 section 6) with optional rotation, token
revocation (RFC 7009) and token introspection (RFC 7662). Access tokens are
JWTs (typ JWT, HS256 or RS256) that Dovecot's oauth2 passdb validates locally
from the key files this server writes (--dovecot-key-dir).

In place of a human at the verification page, a test POSTs the form:

    POST /device   user_code=BCDF-GHJK&username=agent[&action=deny]

In place of a human at the browser sign-in page (GET /authorize?... shows it),
a test POSTs to the same URL, query string included, and reads the Location
header of the 302 without following it:

    POST /authorize?response_type=code&client_id=..&redirect_uri=..&scope=..
         &state=..&code_challenge=..&code_challenge_method=S256
         username=agent[&action=deny]
    -> 302 Location: <redirect_uri>?code=...&state=...
       (deny: <redirect_uri>?error=access_denied&state=...)

Any redirect_uri on http://127.0.0.1, http://[::1] or http://localhost with
any port and path is accepted (no fragment, no userinfo); others get an HTML
error page with status 400 and no redirect. A code is single-use: the first
token request that presents it consumes it, even a failed one (wrong
code_verifier or redirect_uri); presenting it again gets invalid_grant and
revokes every token issued from it (RFC 6749 4.1.2).

Test control (not OAuth): POST /admin/revoke_user  username=agent
revokes every token of that user (consent withdrawn).

Storage is in memory: a restart forgets every token.
"""

import argparse
import base64
import hashlib
import html
import logging
import os
import secrets
import ssl
import sys
import threading
import time
from urllib.parse import urlsplit

from flask import Flask, request, Response
from werkzeug.serving import make_server
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin
from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Error,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc6749.util import scope_to_list, list_to_scope
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc8628 import (
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
    DeviceCredentialDict,
)

log = logging.getLogger("oauth_server")
LOCK = threading.RLock()
AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


def dovecot_escape(identifier):
    """The escaping Dovecot 2.3 applies to azp and kid in the key path."""
    return identifier.replace("%", "%25").replace("/", "%2f")


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
URI_UNSAFE = set('"<>\\^`{|}')


def is_loopback_redirect_uri(uri):
    """http on a loopback host, any port and path, as Google and Microsoft
    allow for desktop clients (RFC 8252 7.3); no fragment (RFC 6749 3.1.2),
    no userinfo, printable ASCII only."""
    if not uri or any(not ("\x21" <= c <= "\x7e") or c in URI_UNSAFE for c in uri):
        return False
    if "#" in uri:
        return False
    try:
        u = urlsplit(uri)
        u.port                      # raises ValueError on a bad port
    except ValueError:
        return False
    return (u.scheme == "http" and u.hostname in LOOPBACK_HOSTS
            and "@" not in u.netloc)


# --------------------------------------------------------------------------
# models (in memory)


class Client(ClientMixin):
    def __init__(self, client_id, client_secret, scope):
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return None

    def get_allowed_scope(self, scope):
        if not scope:
            return ""
        allowed = set(scope_to_list(self.scope))
        return list_to_scope([s for s in scope_to_list(scope) if s in allowed])

    def check_redirect_uri(self, redirect_uri):
        return is_loopback_redirect_uri(redirect_uri)

    def check_client_secret(self, client_secret):
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method, endpoint):
        return method in AUTH_METHODS

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type in (DeviceCodeGrant.GRANT_TYPE, "authorization_code",
                              "refresh_token")


class Token(TokenMixin):
    def __init__(self, client_id, user, scope, access_token, expires_in,
                 refresh_token, refresh_expires_at):
        self.client_id = client_id
        self.user = user
        self.scope = scope
        self.access_token = access_token
        self.issued_at = int(time.time())
        self.expires_in = expires_in
        self.refresh_token = refresh_token
        self.refresh_expires_at = refresh_expires_at
        self.access_revoked = False
        self.refresh_revoked = False
        self.revoke_reason = None
        self.family = None       # the authorization code it descends from

    def check_client(self, client):
        return client.get_client_id() == self.client_id

    def get_scope(self):
        return self.scope

    def get_expires_in(self):
        return self.expires_in

    def is_expired(self):
        return self.issued_at + self.expires_in < time.time()

    def is_revoked(self):
        return self.access_revoked

    def get_user(self):
        return self.user

    def get_client(self):
        return STATE.client


class AuthorizationCode(AuthorizationCodeMixin):
    def __init__(self, code, client_id, redirect_uri, scope, user,
                 code_challenge, code_challenge_method, lifetime):
        self.code = code
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self.scope = scope
        self.user = user
        self.code_challenge = code_challenge
        self.code_challenge_method = code_challenge_method
        self.expires_at = time.time() + lifetime
        self.used = False

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope


class State:
    def __init__(self):
        self.client = None
        self.users = set()
        self.tokens_by_access = {}
        self.tokens_by_refresh = {}
        self.devices = {}        # device_code -> DeviceCredentialDict
        self.used_devices = set()
        self.grants = {}         # user_code -> (user, approved)
        self.codes = {}          # authorization code -> AuthorizationCode (kept once used)


STATE = State()


# --------------------------------------------------------------------------
# tokens


class JwtIssuer:
    def __init__(self, args):
        self.args = args
        self.alg = args.alg
        if self.alg == "HS256":
            raw = secrets.token_bytes(32)
            self.key = OctKey.import_key(raw)
            self.dovecot_value = base64.b64encode(raw).decode()
            fingerprint = hashlib.sha256(raw).hexdigest()
        else:
            self.key = RSAKey.generate_key(2048, private=True)
            self.dovecot_value = self.key.as_pem(private=False).decode()
            fingerprint = hashlib.sha256(self.dovecot_value.encode()).hexdigest()
        # A fresh kid per key: Dovecot caches keys by azp.alg.kid for the
        # life of its auth process, so a restarted server must not reuse one.
        self.kid = args.kid or ("k" + fingerprint[:12])

    def write_keys(self):
        azp = dovecot_escape(self.args.client_id) if self.args.azp else "default"
        kid = dovecot_escape(self.kid)
        if self.args.dovecot_key_dir:
            d = os.path.join(self.args.dovecot_key_dir, azp, self.alg)
            os.makedirs(d, exist_ok=True)
            path = os.path.join(d, kid)
            with open(path + ".tmp", "w") as f:
                f.write(self.dovecot_value)     # no trailing newline
            os.chmod(path + ".tmp", 0o644)
            os.replace(path + ".tmp", path)
            log.info("wrote Dovecot validation key %s", path)
        if self.args.jwt_key_out:
            with open(self.args.jwt_key_out, "w") as f:
                f.write(self.dovecot_value)
            os.chmod(self.args.jwt_key_out, 0o644)

    def access_token(self, client, user, scope, lifetime):
        now = int(time.time())
        claims = {
            "iss": self.args.issuer,
            "sub": user,
            "email": f"{user}@{self.args.email_domain}",
            "preferred_username": user,
            "aud": client.get_client_id(),
            "scope": scope or "",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": secrets.token_hex(12),
        }
        if self.args.azp:
            claims["azp"] = client.get_client_id()
        header = {"alg": self.alg, "typ": "JWT", "kid": self.kid}
        return jwt.encode(header, claims, self.key, algorithms=[self.alg])


def make_token_generator(issuer, args):
    def generate(grant_type, client, user=None, scope=None, expires_in=None,
                 include_refresh_token=True):
        lifetime = expires_in or args.access_lifetime
        token = {
            "token_type": "Bearer",
            "access_token": issuer.access_token(client, user, scope, lifetime),
            "expires_in": lifetime,
            "scope": scope or "",
        }
        if include_refresh_token:
            token["refresh_token"] = "rt-" + secrets.token_urlsafe(36)
        return token
    return generate


def save_token(token, request):
    user = request.user
    with LOCK:
        old = getattr(request, "refresh_token", None)  # refresh grant: the old record
        if "refresh_token" in token:
            refresh = token["refresh_token"]
            refresh_expires_at = (time.time() + STATE.args.refresh_lifetime
                                  if STATE.args.refresh_lifetime > 0 else None)
        elif isinstance(old, Token):
            refresh, refresh_expires_at = old.refresh_token, old.refresh_expires_at
        else:
            refresh, refresh_expires_at = None, None
        rec = Token(request.client.get_client_id(), user, token.get("scope", ""),
                    token["access_token"], token["expires_in"], refresh,
                    refresh_expires_at)
        code = getattr(request, "authorization_code", None)
        if isinstance(code, AuthorizationCode):
            rec.family = code.code
        elif isinstance(old, Token):
            rec.family = old.family
        STATE.tokens_by_access[rec.access_token] = rec
        if refresh:
            STATE.tokens_by_refresh[refresh] = rec
    log.info("issued token for user=%s scope=%r refresh=%s rotated=%s",
             user, rec.scope, bool(refresh), "refresh_token" in token and old is not None)


# --------------------------------------------------------------------------
# grants and endpoints


class MyDeviceAuthorizationEndpoint(DeviceAuthorizationEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def get_verification_uri(self):
        return STATE.args.issuer + "/device"

    def save_device_credential(self, client_id, scope, data):
        cred = DeviceCredentialDict(client_id=client_id, scope=scope, **data)
        cred["expires_at"] = time.time() + data["expires_in"]
        cred["min_interval"] = data["interval"]
        cred["last_poll"] = 0.0
        with LOCK:
            STATE.devices[data["device_code"]] = cred
        log.info("device authorization: user_code=%s scope=%r", data["user_code"], scope)


class MyDeviceCodeGrant(DeviceCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def query_device_credential(self, device_code):
        with LOCK:
            if device_code in STATE.used_devices:
                raise InvalidGrantError("device_code was already used")
            cred = STATE.devices.get(device_code)
        if cred is None:
            raise InvalidGrantError("unknown device_code")
        return cred

    def query_user_grant(self, user_code):
        with LOCK:
            return STATE.grants.get(user_code)

    def should_slow_down(self, credential):
        # RFC 8628 3.5: polling faster than the interval earns slow_down,
        # and the interval grows by 5 seconds for this and later requests.
        now = time.time()
        with LOCK:
            too_fast = now - credential["last_poll"] < credential["min_interval"]
            credential["last_poll"] = now
            if too_fast:
                credential["min_interval"] += 5
        return too_fast

    def create_token_response(self):
        result = super().create_token_response()
        code = self.request.credential["device_code"]
        with LOCK:
            STATE.devices.pop(code, None)
            STATE.used_devices.add(code)
        return result


class S256CodeChallenge(CodeChallenge):
    """PKCE for every client, public or confidential: authlib's
    CodeChallenge(required=True) only insists on a code_verifier from public
    (auth method "none") clients and accepts an authorization request
    without code_challenge; here a code_challenge with method S256 is
    mandatory, so every code carries one and the token request must
    present the matching code_verifier."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge' (PKCE is required)")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class MyAuthorizationCodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    CODE_LIFETIME = 600

    def save_authorization_code(self, code, request):
        data = request.payload.data
        rec = AuthorizationCode(
            code, request.client.get_client_id(), request.payload.redirect_uri,
            request.scope, request.user, data.get("code_challenge"),
            data.get("code_challenge_method"), self.CODE_LIFETIME)
        with LOCK:
            STATE.codes[code] = rec
        log.info("authorization code for user=%s scope=%r redirect_uri=%s",
                 rec.user, rec.scope, rec.redirect_uri)

    def query_authorization_code(self, code, client):
        # Single use: the first token request that gets here consumes the
        # code, whether or not it then passes the PKCE and redirect_uri checks.
        with LOCK:
            rec = STATE.codes.get(code)
            if rec is None or rec.client_id != client.get_client_id():
                return None
            if rec.used:
                n = 0
                for tok in set(STATE.tokens_by_access.values()) | set(STATE.tokens_by_refresh.values()):
                    if tok.family == code and not (tok.access_revoked and tok.refresh_revoked):
                        tok.access_revoked = tok.refresh_revoked = True
                        tok.revoke_reason = "authorization code reused"
                        n += 1
                log.info("authorization code reused: revoked %d token(s) of user=%s",
                         n, rec.user)
                raise InvalidGrantError("authorization code was already used")
            rec.used = True
        if rec.expires_at < time.time():
            raise InvalidGrantError("authorization code has expired")
        return rec

    def delete_authorization_code(self, authorization_code):
        pass    # kept, marked used, to recognise a replay

    def authenticate_user(self, authorization_code):
        return authorization_code.user


class MyRefreshTokenGrant(RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def authenticate_refresh_token(self, refresh_token):
        with LOCK:
            rec = STATE.tokens_by_refresh.get(refresh_token)
        if rec is None:
            raise InvalidGrantError("unknown refresh token")
        if rec.refresh_revoked:
            raise InvalidGrantError(f"refresh token has been revoked ({rec.revoke_reason})")
        if rec.refresh_expires_at is not None and rec.refresh_expires_at < time.time():
            raise InvalidGrantError("refresh token has expired")
        if rec.client_id != self.request.client.get_client_id():
            raise InvalidGrantError("refresh token was issued to another client")
        return rec

    def authenticate_user(self, refresh_token):
        return refresh_token.user

    def revoke_old_credential(self, refresh_token):
        if self.INCLUDE_NEW_REFRESH_TOKEN:
            with LOCK:
                refresh_token.refresh_revoked = True
                refresh_token.revoke_reason = "rotated"


def lookup_token(token_string, hint):
    with LOCK:
        if hint == "refresh_token":
            return STATE.tokens_by_refresh.get(token_string)
        if hint == "access_token":
            return STATE.tokens_by_access.get(token_string)
        return (STATE.tokens_by_access.get(token_string)
                or STATE.tokens_by_refresh.get(token_string))


class MyRevocationEndpoint(RevocationEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string, token_type_hint):
        return lookup_token(token_string, token_type_hint)

    def revoke_token(self, token, request):
        with LOCK:
            token.access_revoked = True
            if request.form.get("token_type_hint") != "access_token" or \
                    request.form.get("token") == token.refresh_token:
                token.refresh_revoked = True
                token.revoke_reason = "revoked by client"
        log.info("revoked token of user=%s", token.user)


class MyIntrospectionEndpoint(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string, token_type_hint):
        return lookup_token(token_string, token_type_hint)

    def check_permission(self, token, client, request):
        return True

    def introspect_token(self, token):
        return {
            "active": True,
            "client_id": token.client_id,
            "token_type": "Bearer",
            "username": token.user,
            "sub": token.user,
            "email": f"{token.user}@{STATE.args.email_domain}",
            "scope": token.scope,
            "aud": token.client_id,
            "iss": STATE.args.issuer,
            "exp": token.issued_at + token.expires_in,
            "iat": token.issued_at,
        }


# --------------------------------------------------------------------------
# the app

DEVICE_FORM = """<!doctype html>
<html><head><title>Device sign-in</title></head><body>
<h1>Sign in a device</h1>
<p>{message}</p>
<form method="post" action="/device">
<label>Code <input name="user_code" value="{user_code}"></label><br>
<label>User <input name="username"></label><br>
<button name="action" value="approve">Approve</button>
<button name="action" value="deny">Deny</button>
</form></body></html>
"""


AUTHORIZE_FORM = """<!doctype html>
<html><head><title>Sign in</title></head><body>
<h1>Sign in</h1>
<p>{message}</p>
<p>Client <b>{client_id}</b> asks for: <b>{scope}</b></p>
<form method="post" action="/authorize?{query}">
<label>User <input name="username" autofocus></label><br>
<button name="action" value="approve">Approve</button>
<button name="action" value="deny">Deny</button>
</form></body></html>
"""

ERROR_PAGE = """<!doctype html>
<html><head><title>Sign-in error</title></head><body>
<h1>Sign-in error</h1>
<p>{error}: {description}</p>
</body></html>
"""


def error_page(error, description, status=400):
    return Response(ERROR_PAGE.format(error=html.escape(error),
                                      description=html.escape(description or "")),
                    status=status, mimetype="text/html")


def create_app(args):
    app = Flask(__name__)
    server = AuthorizationServer(
        app,
        query_client=lambda cid: STATE.client if STATE.client and cid == STATE.client.client_id else None,
        save_token=save_token,
    )
    # Requests for other scopes get invalid_scope.
    server.scopes_supported = scope_to_list(args.scopes)
    issuer = JwtIssuer(args)
    issuer.write_keys()
    server.register_token_generator("default", make_token_generator(issuer, args))
    MyDeviceAuthorizationEndpoint.EXPIRES_IN = args.device_code_lifetime
    MyDeviceAuthorizationEndpoint.INTERVAL = args.interval
    MyRefreshTokenGrant.INCLUDE_NEW_REFRESH_TOKEN = args.rotate_refresh
    MyAuthorizationCodeGrant.CODE_LIFETIME = args.code_lifetime
    server.register_endpoint(MyDeviceAuthorizationEndpoint)
    server.register_endpoint(MyRevocationEndpoint)
    server.register_endpoint(MyIntrospectionEndpoint)
    server.register_grant(MyDeviceCodeGrant)
    server.register_grant(MyRefreshTokenGrant)
    server.register_grant(MyAuthorizationCodeGrant, [S256CodeChallenge(required=True)])

    @app.post("/device_authorization")
    def device_authorization():
        return server.create_endpoint_response("device_authorization")

    @app.post("/token")
    def token():
        return server.create_token_response()

    @app.post("/revoke")
    def revoke():
        return server.create_endpoint_response("revocation")

    @app.post("/introspect")
    def introspect():
        return server.create_endpoint_response("introspection")

    @app.get("/device")
    def device_page():
        code = html.escape(request.args.get("user_code", ""))
        return DEVICE_FORM.format(message="Enter the code shown on your device.",
                                  user_code=code)

    @app.post("/device")
    def device_approve():
        user_code = request.form.get("user_code", "").strip().upper()
        username = request.form.get("username", "").strip()
        approve = request.form.get("action", "approve") != "deny"
        with LOCK:
            cred = next((c for c in STATE.devices.values()
                         if c["user_code"] == user_code), None)
            if cred is None or cred.is_expired():
                msg, status = "Unknown or expired code.", 400
            elif username not in STATE.users:
                msg, status = "Unknown user.", 400
            else:
                STATE.grants[user_code] = (username, approve)
                msg, status = ("Device approved." if approve else "Device denied."), 200
        log.info("device page: user_code=%s user=%s approve=%s -> %d",
                 user_code, username, approve, status)
        return Response(DEVICE_FORM.format(message=html.escape(msg), user_code=""),
                        status=status, mimetype="text/html")

    def consent_grant():
        """Validate the authorization request: (grant, None) or
        (None, response). A bad client or redirect_uri gets an error page,
        never a redirect; other errors go back to the redirect_uri."""
        client_id = request.values.get("client_id", "")
        redirect_uri = request.values.get("redirect_uri", "")
        if not (STATE.client and client_id == STATE.client.client_id):
            return None, error_page("invalid_client", "Unknown client_id.")
        if not is_loopback_redirect_uri(redirect_uri):
            return None, error_page(
                "invalid_request",
                "redirect_uri must be http://127.0.0.1, http://[::1] or "
                "http://localhost (any port and path): " + redirect_uri)
        try:
            return server.get_consent_grant(), None
        except OAuth2Error as error:
            log.info("authorize: %s %s", error.error, error.description)
            if error.redirect_uri:
                return None, server.handle_error_response(None, error)
            return None, error_page(error.error, error.description)

    def authorize_form(grant, message, status=200):
        return Response(AUTHORIZE_FORM.format(
            message=html.escape(message),
            client_id=html.escape(grant.request.client.get_client_id()),
            scope=html.escape(grant.request.scope or "(none)"),
            query=html.escape(request.query_string.decode("latin-1"))),
            status=status, mimetype="text/html")

    @app.get("/authorize")
    def authorize_page():
        grant, response = consent_grant()
        if response is not None:
            return response
        return authorize_form(grant, "Sign in to approve this application.")

    @app.post("/authorize")
    def authorize_approve():
        grant, response = consent_grant()
        if response is not None:
            return response
        username = request.form.get("username", "").strip()
        approve = request.form.get("action", "approve") != "deny"
        if approve and username not in STATE.users:
            log.info("authorize page: unknown user=%r", username)
            return authorize_form(grant, "Unknown user.", 400)
        response = server.create_authorization_response(
            grant_user=username if approve else None, grant=grant)
        log.info("authorize page: user=%s approve=%s -> %d",
                 username, approve, response.status_code)
        return response

    @app.post("/admin/revoke_user")
    def revoke_user():
        username = request.form.get("username", "")
        n = 0
        with LOCK:
            for rec in set(STATE.tokens_by_access.values()) | set(STATE.tokens_by_refresh.values()):
                if rec.user == username and not (rec.refresh_revoked and rec.access_revoked):
                    rec.refresh_revoked = rec.access_revoked = True
                    rec.revoke_reason = "consent withdrawn"
                    n += 1
            for code, (user, _) in list(STATE.grants.items()):
                if user == username:
                    del STATE.grants[code]
        log.info("admin: revoked %d token(s) of user=%s", n, username)
        return {"revoked": n}

    @app.get("/health")
    def health():
        return {"ok": True}

    return app


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--client-secret", required=True)
    p.add_argument("--scopes", default="imap smtp offline_access",
                   help="scopes the client may request")
    p.add_argument("--users", default="support,helpdesk,agent,sink",
                   help="comma-separated users who may approve a device or sign in")
    p.add_argument("--email-domain", default="local.test")
    p.add_argument("--issuer", help="iss claim; default https://127.0.0.1:PORT")
    p.add_argument("--alg", choices=["HS256", "RS256"], default="HS256")
    p.add_argument("--kid", help="JWT kid; default derived from the key")
    p.add_argument("--azp", action="store_true",
                   help="add azp=client_id (Dovecot then looks the key up under the client id)")
    p.add_argument("--access-lifetime", type=int, default=3600, metavar="SECS")
    p.add_argument("--refresh-lifetime", type=int, default=0, metavar="SECS",
                   help="0 = refresh tokens never expire")
    p.add_argument("--rotate-refresh", dest="rotate_refresh", action="store_true", default=True)
    p.add_argument("--no-rotate-refresh", dest="rotate_refresh", action="store_false")
    p.add_argument("--device-code-lifetime", type=int, default=600, metavar="SECS")
    p.add_argument("--code-lifetime", type=int, default=600, metavar="SECS",
                   help="authorization code lifetime")
    p.add_argument("--interval", type=int, default=1, metavar="SECS",
                   help="device polling interval (slow_down below it)")
    p.add_argument("--dovecot-key-dir", help="write the validation key in the layout of "
                   "Dovecot's local_validation_key_dict = fs:posix:prefix=DIR/")
    p.add_argument("--jwt-key-out", help="also write the verification key (base64 / PEM) here")
    p.add_argument("--log-file")
    args = p.parse_args()
    if not args.issuer:
        args.issuer = f"https://{args.host}:{args.port}"

    logging.basicConfig(
        filename=args.log_file, level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    STATE.args = args
    STATE.client = Client(args.client_id, args.client_secret, args.scopes)
    STATE.users = set(u for u in args.users.split(",") if u)

    app = create_app(args)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)
    httpd = make_server(args.host, args.port, app, threaded=True, ssl_context=ctx)
    print(f"READY {args.issuer}", flush=True)
    log.info("listening on %s", args.issuer)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
