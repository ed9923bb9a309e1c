#!/usr/bin/env bash
# A private mail stack for the integration tests: one Dovecot (IMAP with
# STARTTLS and implicit TLS, LMTP, auth socket) and one Postfix (plain SMTP,
# submission with STARTTLS + AUTH, submissions with implicit TLS) per test,
# each with its own config, state and ports under a directory the test owns.
# Nothing here touches the system's own Dovecot or Postfix configuration.
#
#   mailstack.sh install            apt-get the Debian packages when missing
#   mailstack.sh start DIR BASEPORT start the stack, print KEY=VALUE lines
#   mailstack.sh stop DIR           stop it
#
# Ports: BASEPORT+0 IMAP (STARTTLS), +1 IMAPS, +2 submission (STARTTLS,
# AUTH), +3 submissions (implicit TLS, AUTH), +4 SMTP (no AUTH, loopback
# relay allowed). Users (password = name + "pw"): support, helpdesk, agent,
# sink. Every recipient outside those four lands in sink's INBOX, so a test
# reads back what the desk sent over IMAP, except tempfail@* (refused with
# 450) and reject@* (refused with 550).
set -euo pipefail

die() { echo "mailstack: $*" >&2; exit 1; }

install_packages() {
    local missing=()
    command -v dovecot >/dev/null || missing+=(dovecot-imapd)
    [ -x /usr/lib/dovecot/lmtp ] || missing+=(dovecot-lmtpd)
    command -v postfix >/dev/null || missing+=(postfix)
    command -v openssl >/dev/null || missing+=(openssl)
    [ -x /usr/bin/time ] || missing+=(time)
    command -v ss >/dev/null || missing+=(iproute2)       # the frozen-SMTP test finds our session
    command -v script >/dev/null || missing+=(bsdutils)   # the colour test runs the daemon on a pty
    command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)   # the trust tests' DNS (DKIM keys)
    command -v dkimsign >/dev/null || missing+=(python3-dkim)  # the trust tests' DKIM signer (dkimpy)
    command -v chromium >/dev/null || missing+=(chromium)      # the report test renders the HTML report
    command -v curl >/dev/null || missing+=(curl)              # the OAuth tests post to the authorization server
    python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)  # its venv (oauth.sh)
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "need root to install: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    echo "mailstack: installing ${missing[*]}" >&2
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

make_certs() {
    local d=$1
    mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$d/ca.key" -out "$d/ca.crt" -days 30 \
        -subj "/CN=supportdesk test CA" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=localhost" 2>/dev/null
    cat >"$d/ext.cnf" <<EOF
basicConstraints = critical, CA:FALSE
subjectAltName = DNS:localhost, IP:127.0.0.1
extendedKeyUsage = serverAuth
keyUsage = critical, digitalSignature, keyEncipherment
EOF
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
        -CAcreateserial -out "$d/server.crt" -days 30 -extfile "$d/ext.cnf" 2>/dev/null
    chmod 0644 "$d/server.crt" "$d/ca.crt"
    chmod 0600 "$d/server.key" "$d/ca.key"
}

wait_port() {
    local port=$1 deadline=$((SECONDS + 20))
    while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.05
    done
}

start() {
    local dir=$1 base=$2
    [ -n "$dir" ] && [ -n "$base" ] || die "usage: start DIR BASEPORT"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local imap=$base imaps=$((base + 1)) sub=$((base + 2)) smtps=$((base + 3)) smtp=$((base + 4))
    local dv=$dir/dovecot pf=$dir/postfix tls=$dir/tls

    # Dovecot's login processes and Postfix's delivery agents run as their
    # own users: they must be able to walk into the test's directory.
    chmod o+x "$dir" "$(dirname "$dir")"

    make_certs "$tls"
    mkdir -p "$dv/run" "$dv/state" "$dir/mail" "$pf" "$dir/postfix-queue" "$dir/postfix-data"
    chown postfix "$dir/postfix-data" 2>/dev/null || true

    local uid gid login_user internal_user
    if [ "$(id -u)" -eq 0 ]; then
        # Dovecot never delivers mail as root: the mail belongs to nobody.
        uid=$(id -u nobody)
        gid=$(id -g nobody)
        login_user=dovenull
        internal_user=dovecot
        chown "$uid:$gid" "$dir/mail"
    else
        uid=$(id -u)
        gid=$(id -g)
        login_user=$(id -un)
        internal_user=$(id -un)
    fi
    : >"$dv/users"
    for u in support helpdesk agent sink; do
        echo "$u:{PLAIN}${u}pw:$uid:$gid::$dir/mail/$u::" >>"$dv/users"
    done
    chmod 0644 "$dv/users"

    local dh=""
    [ -f /usr/share/dovecot/dh.pem ] && dh="ssl_dh = </usr/share/dovecot/dh.pem"
    cat >"$dv/dovecot.conf" <<EOF
instance_name = mailstack-$base
base_dir = $dv/run
state_dir = $dv/state
log_path = $dv/log
protocols = imap lmtp
listen = 127.0.0.1
default_login_user = $login_user
default_internal_user = $internal_user
first_valid_uid = $uid
last_valid_uid = $uid
first_valid_gid = $gid
mail_location = maildir:~/Maildir
ssl = yes
ssl_cert = <$tls/server.crt
ssl_key = <$tls/server.key
$dh
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_failure_delay = 0
# Keepalives during IDLE ("* OK Still here") every second instead of every
# 2 minutes, so a test sees that IDLE is re-issued despite them.
imap_idle_notify_interval = 1 secs
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%n $dv/users
}
userdb {
  driver = passwd-file
  args = username_format=%n $dv/users
}
protocol lmtp {
  postmaster_address = postmaster@local.test
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $imaps
    ssl = yes
  }
}
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
}
service auth {
  unix_listener auth-postfix {
    mode = 0666
  }
}
EOF
    # The daemons must not inherit our stdout/stderr: the caller reads them
    # to the end.
    if ! dovecot -c "$dv/dovecot.conf" </dev/null >"$dv/start.log" 2>&1; then
        cat "$dv/start.log" "$dv/log" >&2 2>/dev/null || true
        die "dovecot did not start"
    fi

    cat >"$pf/virtual" <<'EOF'
/^(support|helpdesk|agent|sink)@/ ${1}@local.test
/^.*$/ sink@local.test
EOF
    cat >"$pf/vmailbox" <<'EOF'
/^(support|helpdesk|agent|sink)@local\.test$/ ok
EOF
    # Recipients that make the server refuse for a while or for good, for
    # the outbox's retry tests.
    cat >"$pf/access" <<'EOF'
/^tempfail@/ 450 4.2.0 Mailbox busy, try again later
/^reject@/ 550 5.1.1 No such user here
EOF
    cat >"$pf/main.cf" <<EOF
compatibility_level = 3.6
config_directory = $pf
queue_directory = $dir/postfix-queue
data_directory = $dir/postfix-data
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.local.test
mydomain = local.test
myorigin = local.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = $pf/maillog
maillog_file_prefixes = /var, /dev/stdout, $pf
alias_maps =
alias_database =
local_recipient_maps =
relay_domains =
virtual_alias_domains =
virtual_alias_maps = regexp:$pf/virtual
virtual_mailbox_domains = local.test
virtual_mailbox_maps = regexp:$pf/vmailbox
virtual_transport = lmtp:unix:$dv/run/lmtp
smtpd_reject_unlisted_recipient = no
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject
smtpd_recipient_restrictions = check_recipient_access regexp:$pf/access
smtpd_tls_cert_file = $tls/server.crt
smtpd_tls_key_file = $tls/server.key
smtpd_tls_security_level = may
smtpd_sasl_type = dovecot
smtpd_sasl_path = $dv/run/auth-postfix
smtpd_sasl_auth_enable = no
biff = no
readme_directory = no
smtputf8_enable = yes
message_size_limit = 52428800
# Tests restart Dovecot: retry LMTP deliveries within seconds, not minutes.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 5s
# An LMTP agent that failed (Dovecot killed under it) throttles the whole
# transport for transport_retry_time, 60s by default: as long as a test waits.
transport_retry_time = 1s
EOF
    cat >"$pf/master.cf" <<EOF
127.0.0.1:$smtp inet n - n - - smtpd
127.0.0.1:$sub inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
127.0.0.1:$smtps inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
    if ! postfix -c "$pf" start </dev/null >"$pf/start.log" 2>&1; then
        cat "$pf/start.log" "$pf/maillog" >&2 2>/dev/null || true
        stop "$dir"
        die "postfix did not start"
    fi

    for p in $imap $imaps $sub $smtps $smtp; do
        if ! wait_port "$p"; then
            { cat "$dv/log"; cat "$pf/start.log" "$pf/maillog"; } >&2 2>/dev/null || true
            stop "$dir"
            die "port $p did not open"
        fi
    done
    echo "IMAP_PORT=$imap"
    echo "IMAPS_PORT=$imaps"
    echo "SUBMISSION_PORT=$sub"
    echo "SMTPS_PORT=$smtps"
    echo "SMTP_PORT=$smtp"
    echo "CA_FILE=$tls/ca.crt"
    echo "MAIL_DIR=$dir/mail"
}

stop() {
    local dir=$1
    [ -d "$dir" ] || return 0
    dir=$(cd "$dir" && pwd)
    local pids=()
    for f in "$dir/dovecot/run/master.pid" "$dir/postfix-queue/pid/master.pid"; do
        if [ -f "$f" ]; then
            local pid
            pid=$(tr -d ' \n' <"$f")
            [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
        fi
    done
    # Both masters take their children down with them; wait briefly so the
    # ports are free when we return.
    local deadline=$((SECONDS + 10))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
        kill -KILL "$pid" 2>/dev/null || true
    done
}

case "${1:-}" in
install) install_packages ;;
start) start "${2:-}" "${3:-}" ;;
stop) stop "${2:-}" ;;
*) die "usage: $0 install | start DIR BASEPORT | stop DIR" ;;
esac
