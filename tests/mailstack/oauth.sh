#!/usr/bin/env bash
# OAuth 2.0 on top of a running mailstack (tests/mailstack/mailstack.sh):
# a real authorization server (oauth_server.py, authlib + Flask, HTTPS on
# BASEPORT+5) and the stack's Dovecot reconfigured so that IMAP and Postfix
# submission accept XOAUTH2 and OAUTHBEARER with its tokens, while PLAIN and
# LOGIN passwords keep working.
#
#   oauth.sh install                     create the venv (idempotent, fast when done)
#   oauth.sh start DIR BASEPORT [ARGS]   DIR is a stack started by
#                                        `mailstack.sh start DIR BASEPORT`;
#                                        ARGS go to oauth_server.py, e.g.
#                                        --access-lifetime 3 --no-rotate-refresh
#                                        prints KEY=VALUE lines
#   oauth.sh stop DIR                    stop the OAuth server (mailstack.sh
#                                        stop DIR stops Dovecot and Postfix)
#
# Environment for start: OAUTH_CLIENT_ID (supportdesk-test),
# OAUTH_CLIENT_SECRET (supportdesk-test-secret), OAUTH_DELEGATES
# ("agent:helpdesk": space-separated OWNER:MAILBOX pairs; OWNER's token may
# log in to MAILBOX, like a Microsoft 365 shared mailbox),
# OAUTH_VALIDATION (local: Dovecot checks the JWT's signature and exp
# itself, so a revoked access token still works until it expires;
# introspect: Dovecot asks the server's RFC 7662 endpoint on every login),
# OAUTH_DOVECOT_SCOPE ("imap smtp": scopes every token must carry to log in;
# empty: no scope check),
# OAUTH_KEEP_AUTH_PENALTY (empty: Dovecot's auth penalty is turned off, so a
# failed login does not delay the next ones from 127.0.0.1 by 2-15 s).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
venv=$here/../../target/oauth-venv

die() { echo "oauth: $*" >&2; exit 1; }

# Pinned: what `pip install authlib flask` resolved to on Python 3.11.
PINS=(
    Authlib==1.9.10 joserfc==1.8.0 Flask==3.1.3 Werkzeug==3.1.9
    cryptography==50.0.2 cffi==2.1.1 pycparser==3.12 blinker==1.9.0
    click==8.5.1 itsdangerous==2.2.0 Jinja2==3.1.6 MarkupSafe==3.0.4
)

install() {
    local stamp=$venv/.pins
    if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "${PINS[*]}" ]; then
        return 0
    fi
    mkdir -p "$(dirname "$venv")"
    # Two tests may install at once: one does it, the other waits.
    exec 9>"$venv.lock"
    flock 9
    if ! [ -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${PINS[*]}" ]; then
        rm -rf "$venv"
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install -q --disable-pip-version-check --no-input "${PINS[@]}" >&2
        echo "${PINS[*]}" >"$stamp"
    fi
    exec 9>&-   # the server started later must not hold the lock
}

wait_port() {
    local port=$1 deadline=$((SECONDS + 20))
    while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.05
    done
}

stop_server() {
    local od=$1/oauth pid
    [ -f "$od/server.pid" ] || return 0
    pid=$(cat "$od/server.pid")
    rm -f "$od/server.pid"
    kill -TERM "$pid" 2>/dev/null || return 0
    local deadline=$((SECONDS + 5))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
}

start() {
    local dir=${1:-} base=${2:-}
    [ -n "$dir" ] && [ -n "$base" ] || die "usage: start DIR BASEPORT [SERVER ARGS]"
    shift 2
    dir=$(cd "$dir" && pwd)
    local dv=$dir/dovecot pf=$dir/postfix tls=$dir/tls od=$dir/oauth
    [ -f "$dv/dovecot.conf" ] && [ -f "$dv/run/master.pid" ] ||
        die "no running mailstack in $dir"
    local port=$((base + 5))
    local client_id=${OAUTH_CLIENT_ID:-supportdesk-test}
    local client_secret=${OAUTH_CLIENT_SECRET:-supportdesk-test-secret}
    local issuer=https://127.0.0.1:$port

    install
    stop_server "$dir"
    rm -rf "$od"
    mkdir -p "$od/keys"
    chmod 0755 "$od" "$od/keys"

    # The server writes its key as $od/keys/default/HS256/<kid>, the layout
    # of Dovecot's local_validation_key_dict (shared/<azp>/<alg>/<kid>).
    "$venv/bin/python" "$here/oauth_server.py" --port "$port" \
        --cert "$tls/server.crt" --key "$tls/server.key" \
        --client-id "$client_id" --client-secret "$client_secret" \
        --issuer "$issuer" --dovecot-key-dir "$od/keys" \
        --log-file "$od/server.log" "$@" \
        </dev/null >"$od/server.out" 2>"$od/server.err" &
    echo $! >"$od/server.pid"
    local deadline=$((SECONDS + 30))
    until grep -q '^READY' "$od/server.out" 2>/dev/null; do
        if ! kill -0 "$(cat "$od/server.pid")" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
            cat "$od/server.err" "$od/server.log" >&2 2>/dev/null || true
            stop_server "$dir"
            die "oauth server did not start"
        fi
        sleep 0.05
    done

    # Dovecot: two oauth2 passdbs (the token's owner logs in as herself; or
    # the owner is a delegate of the login mailbox, checked in a passwd-file
    # of MAILBOX+OWNER keys), then the existing passwd-file for PLAIN/LOGIN.
    local common
    case ${OAUTH_VALIDATION:-local} in
    local) common="introspection_mode = local
local_validation_key_dict = fs:posix:prefix=$od/keys/
issuers = $issuer" ;;
    introspect) common="introspection_mode = post
introspection_url = $issuer/introspect
client_id = $client_id
client_secret = $client_secret
tls_ca_cert_file = $tls/ca.crt" ;;
    *) stop_server "$dir"; die "OAUTH_VALIDATION must be local or introspect" ;;
    esac
    # Debian's 2.3.19.1+deb12u7 requires ALL of these scopes in the token
    # (upstream 2.3.19 wanted any one of them).
    [ -n "${OAUTH_DOVECOT_SCOPE-imap smtp}" ] && common="$common
scope = ${OAUTH_DOVECOT_SCOPE-imap smtp}"
    cat >"$dv/oauth2-owner.conf.ext" <<EOF
$common
# The login name (local part, lower case) must equal the token's email's.
username_attribute = email
username_format = %Ln
EOF
    cat >"$dv/oauth2-delegate.conf.ext" <<EOF
$common
# A constant format turns off the login-name check: the next passdb checks
# that the token's owner (exported as oauth2_owner) may open this mailbox.
username_attribute = sub
username_format = delegate
pass_attrs = oauth2_owner=%{oauth2:sub}
EOF
    : >"$dv/oauth-delegates"
    local pair
    for pair in ${OAUTH_DELEGATES-agent:helpdesk}; do
        echo "${pair#*:}+${pair%%:*}:::::::nopassword" >>"$dv/oauth-delegates"
    done
    chmod 0644 "$dv/oauth-delegates" "$dv/oauth2-owner.conf.ext" "$dv/oauth2-delegate.conf.ext"
    cat >"$dv/oauth-passdbs.conf" <<EOF
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $dv/oauth2-owner.conf.ext
}
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $dv/oauth2-delegate.conf.ext
  result_success = continue-ok
  result_failure = return-fail
}
passdb {
  driver = passwd-file
  mechanisms = xoauth2 oauthbearer
  skip = unauthenticated
  args = username_format=%Ln+%L{passdb:oauth2_owner} $dv/oauth-delegates
  result_failure = return-fail
}
EOF
    [ -f "$dv/dovecot.conf.pre-oauth" ] || cp "$dv/dovecot.conf" "$dv/dovecot.conf.pre-oauth"
    awk -v inc="$dv/oauth-passdbs.conf" -v penalty="${OAUTH_KEEP_AUTH_PENALTY:-}" '
        $0 == "auth_mechanisms = plain login" {
            print "auth_mechanisms = plain login xoauth2 oauthbearer"
            print "auth_verbose = yes"
            next
        }
        $0 == "passdb {" && !done {
            print "!include " inc
            print
            print "  mechanisms = plain login"
            done = 1
            next
        }
        { print }
        END {
            if (penalty == "") {
                # No anvil-auth-penalty socket: no 2-15 s delay of every
                # auth attempt from 127.0.0.1 after a failed one.
                print "service anvil {"
                print "  unix_listener anvil-auth-penalty {"
                print "    mode = 0"
                print "  }"
                print "}"
            }
        }' "$dv/dovecot.conf.pre-oauth" >"$dv/dovecot.conf.new"
    grep -q oauth-passdbs "$dv/dovecot.conf.new" || die "could not edit $dv/dovecot.conf"
    mv "$dv/dovecot.conf.new" "$dv/dovecot.conf"
    if ! doveadm -c "$dv/dovecot.conf" reload >"$od/reload.log" 2>&1; then
        cat "$od/reload.log" >&2
        stop_server "$dir"
        die "dovecot reload failed"
    fi
    # Wait until new login processes offer the mechanisms, then make
    # Postfix's smtpd processes fetch the mechanism list anew.
    if ! "$venv/bin/python" - "$((base + 1))" "$tls/ca.crt" <<'EOF'
import socket, ssl, sys, time
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
deadline = time.time() + 20
while time.time() < deadline:
    try:
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), 2),
                             server_hostname="localhost") as s:
            if b"AUTH=XOAUTH2" in s.recv(4096):
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.05)
sys.exit(1)
EOF
    then
        tail -20 "$dv/log" >&2 || true
        stop_server "$dir"
        die "dovecot does not offer XOAUTH2 after reload"
    fi
    postfix -c "$pf" reload >/dev/null 2>&1 || true
    wait_port "$((base + 2))" || die "submission port did not come back"

    echo "OAUTH_PORT=$port"
    echo "OAUTH_ISSUER=$issuer"
    echo "DEVICE_AUTHORIZATION_URL=$issuer/device_authorization"
    echo "DEVICE_URL=$issuer/device_authorization"
    echo "VERIFICATION_URL=$issuer/device"
    echo "AUTHORIZATION_URL=$issuer/authorize"
    echo "TOKEN_URL=$issuer/token"
    echo "REVOKE_URL=$issuer/revoke"
    echo "INTROSPECT_URL=$issuer/introspect"
    echo "ADMIN_REVOKE_USER_URL=$issuer/admin/revoke_user"
    echo "CLIENT_ID=$client_id"
    echo "CLIENT_SECRET=$client_secret"
    echo "OAUTH_SCOPES=imap smtp offline_access"
    echo "OAUTH_CA_FILE=$tls/ca.crt"
    echo "OAUTH_LOG=$od/server.log"
}

case "${1:-}" in
install) install ;;
start) shift; start "$@" ;;
stop) [ -n "${2:-}" ] && [ -d "$2" ] && stop_server "$(cd "$2" && pwd)"; true ;;
*) die "usage: $0 install | start DIR BASEPORT [SERVER ARGS] | stop DIR" ;;
esac
