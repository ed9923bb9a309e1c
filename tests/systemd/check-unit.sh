#!/usr/bin/env bash
# Checks a systemd service unit offline, without a running systemd:
#   1. `systemd-analyze verify` must report nothing about the unit;
#   2. `systemd-analyze security --offline=true` must give an overall
#      exposure level at or below THRESHOLD (default 2.0).
#
# Usage: tests/systemd/check-unit.sh UNIT_FILE BINARY [THRESHOLD]
#   UNIT_FILE  the unit to check, e.g. systemd/supportdesk.service
#   BINARY     absolute path of a real executable (e.g. target/release/supportdesk,
#              or /bin/true): verify insists that every Exec*= command exists,
#              so the unit is checked on a copy whose commands run BINARY.
#
# Installs systemd (for systemd-analyze) with apt-get when it is missing;
# that needs root. Exits 0 when both checks pass, non-zero otherwise.
set -euo pipefail

prog=${0##*/}
die() {
    echo "$prog: FAIL: $*" >&2
    exit 1
}
trap 'echo "$prog: FAIL: unexpected error at line $LINENO (exit $?)" >&2' ERR

[[ $# -eq 2 || $# -eq 3 ]] || die "usage: $prog UNIT_FILE BINARY [THRESHOLD]"
unit_file=$1
binary=$2
threshold=${3:-2.0}

[[ -f $unit_file && -r $unit_file ]] || die "unit file '$unit_file' does not exist or is not readable"
[[ $binary == /* ]] || die "BINARY must be an absolute path, got '$binary'"
[[ -f $binary && -x $binary ]] || die "BINARY '$binary' is not an executable file"
[[ $threshold =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "THRESHOLD must be a number like 2.0, got '$threshold'"

unit_name=${unit_file##*/}
[[ $unit_name == *.service ]] || die "'$unit_name' is not a .service unit"

# ---------------------------------------------------------------- tooling
if ! command -v systemd-analyze >/dev/null 2>&1; then
    [[ $(id -u) -eq 0 ]] || die "systemd-analyze is missing and installing it needs root"
    command -v apt-get >/dev/null 2>&1 || die "systemd-analyze is missing and apt-get is not available"
    echo "$prog: installing systemd (for systemd-analyze)"
    apt_log=$(mktemp)
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >"$apt_log" 2>&1; then
        # A fresh container often has no package lists yet.
        if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd; } >"$apt_log" 2>&1; then
            cat "$apt_log" >&2
            rm -f "$apt_log"
            die "could not install systemd with apt-get"
        fi
    fi
    rm -f "$apt_log"
    command -v systemd-analyze >/dev/null 2>&1 || die "systemd installed but systemd-analyze is still not on PATH"
fi
# No pager, no colours: the output is parsed below.
export SYSTEMD_PAGER= SYSTEMD_COLORS=0 SYSTEMD_LOG_COLOR=0

# ---------------------------------------------------------------- the copy
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
copy=$tmp/$unit_name

# The program ExecStart= runs: the first word of the last non-empty
# ExecStart= value, without its special prefixes (-, @, :, +, !, !!).
exec_start_bin() {
    awk '
        /^[[:space:]]*ExecStart[[:space:]]*=/ {
            v = $0
            sub(/^[^=]*=[[:space:]]*/, "", v)
            sub(/^[-@:+!]+/, "", v)
            split(v, w, /[[:space:]]+/)
            if (w[1] != "") bin = w[1]
        }
        END { print bin }' "$1"
}
orig_bin=$(exec_start_bin "$unit_file")
[[ -n $orig_bin ]] || die "$unit_file has no ExecStart= command"

# Point every Exec*= line that runs that program (ExecStart, and
# ExecStartPre/ExecReload/... when they call it too) at BINARY; other
# commands (e.g. /bin/kill in ExecReload) stay as they are and must exist.
awk -v old="$orig_bin" -v new="$binary" '
    function is_sep(c) { return c == "" || c == " " || c == "\t" }
    /^[[:space:]]*Exec[A-Za-z]*[[:space:]]*=/ {
        out = ""; rest = $0
        while ((i = index(rest, old)) > 0) {
            before = substr(rest, i - 1, 1)
            after = substr(rest, i + length(old), 1)
            if (is_sep(after) && (i == 1 || before ~ /[=[:space:]@:+!-]/)) {
                out = out substr(rest, 1, i - 1) new
            } else {
                out = out substr(rest, 1, i - 1 + length(old))
            }
            rest = substr(rest, i + length(old))
        }
        $0 = out rest
    }
    { print }' "$unit_file" >"$copy"
[[ $(exec_start_bin "$copy") == "$binary" ]] ||
    die "could not rewrite ExecStart= of the copy to run $binary"
echo "$prog: checking $unit_file (as $copy, $orig_bin -> $binary)"

# ---------------------------------------------------------------- verify
# --man=no: do not look up man: Documentation= pages (man may be absent).
# The default --recursive-errors=yes is kept: with "no", verify does not
# even try to start the unit's dependencies, so a Requires= on a unit that
# does not exist would pass. The price is that the exit status also
# reflects the host's units, hence the filtering below.
verify_rc=0
verify_out=$(systemd-analyze verify --man=no "$copy" 2>&1) || verify_rc=$?

# verify exits 0 even after warnings such as "Unknown key", so every line
# is read. A line is host noise (printed, ignored) only when it starts with
# ANOTHER unit's name, unit file or drop-in path ("foo.target: ...",
# "/lib/systemd/system/foo.target:12: ...", ".../foo.target.d/x.conf:3: ..."):
# the host's units (network-online.target, multi-user.target, ...) are
# loaded because ours refers to them, and are not ours to fix. Lines naming
# our unit, its copy, a host drop-in for our unit's name (it applies to the
# copy too), and unprefixed lines (subject unknown) count against the unit.
# A non-zero exit with only host noise passes; with no output, it fails.
unit_suffix='(service|socket|target|mount|automount|swap|timer|path|slice|scope|device)'
ours=()
noise=()
while IFS= read -r line; do
    [[ -z ${line//[[:space:]]/} ]] && continue
    if [[ $line == "$copy:"* || $line == "$unit_name:"* || $line == */"$unit_name.d/"* ]]; then
        ours+=("$line")
    elif [[ $line =~ ^[^[:space:]:]+\.$unit_suffix(\.d/[^[:space:]:]+\.conf)?(:[0-9]+)?:\  ]]; then
        noise+=("$line")
    else
        ours+=("$line")
    fi
done <<<"$verify_out"

if ((${#noise[@]})); then
    echo "$prog: ignored ${#noise[@]} verify line(s) about the host's other units:"
    printf '    %s\n' "${noise[@]}"
fi
if ((${#ours[@]})); then
    echo "$prog: systemd-analyze verify reported on $unit_name:" >&2
    printf '    %s\n' "${ours[@]}" >&2
    die "systemd-analyze verify: ${#ours[@]} problem(s) in $unit_file"
fi
if ((verify_rc != 0)); then
    ((${#noise[@]})) || die "systemd-analyze verify exited $verify_rc without saying why"
    echo "$prog: verify exited $verify_rc, only because of the host's units above"
fi
echo "$prog: verify OK"

# ---------------------------------------------------------------- security
security_rc=0
security_out=$(systemd-analyze security --offline=true --no-pager "$copy" 2>&1) || security_rc=$?
exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9]*\(\.[0-9][0-9]*\)\{0,1\}\).*/\1/p' <<<"$security_out" | tail -n 1)
if [[ -z $exposure ]]; then
    printf '%s\n' "$security_out" >&2
    die "systemd-analyze security (exit $security_rc) printed no overall exposure level"
fi
((security_rc == 0)) || {
    printf '%s\n' "$security_out" >&2
    die "systemd-analyze security exited $security_rc"
}

echo "$prog: overall exposure level: $exposure (threshold $threshold)"
if awk -v e="$exposure" -v t="$threshold" 'BEGIN { exit !(e > t) }'; then
    echo "$prog: settings that still expose the service:" >&2
    grep '✗' <<<"$security_out" >&2 || true
    die "exposure $exposure is above the threshold $threshold"
fi
echo "$prog: OK"
