#!/bin/sh
# install-user.sh -- what hmac-file-server needs on a machine besides its
# files: the account it runs as, a random shared secret and its storage
# directories, all taken from the configuration so the two cannot disagree.
#
#   sh etc/install-user.sh                 # run by "make install" as root
#   CONF=/path/to/other.conf sh etc/install-user.sh
#
# From CONF (default /etc/hmac-file-server/hmac-file-server.conf) it reads
# server.user, server.group, the first of security.secret_files,
# storage.dir and storage.staging, and, as root:
#   - creates the group and a system user for it (no login shell, no home:
#     /nonexistent) when they do not exist;
#   - creates the secret file when it does not exist: 32 random bytes as 64
#     hex digits, mode 0640, root:<group> (the daemon re-reads it on reload
#     as <user>). An existing secret is NEVER touched;
#   - creates the storage directories when missing, mode 0750, owned by
#     <user>:<group> (existing ones are left as they are);
#   - gives CONF to <group> when its group is root, so reloads can read it.
# Running it again changes nothing. It does not remove anything, ever.
#
# Packagers: "make install DESTDIR=..." does not run this (it would create
# the account on the build machine); run it from the package's post-install
# step instead (it is installed as $PREFIX/share/hmac-file-server/).

set -eu
umask 022

CONF=${CONF:-/etc/hmac-file-server/hmac-file-server.conf}

say() { printf 'install-user: %s\n' "$*"; }
die() { printf 'install-user: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run me as root (I create an account and chown)"
[ -r "$CONF" ] || die "cannot read $CONF"

# The last value of KEY = "..." outside comments (the sample config's form;
# hmac-file-server -t checks the file itself). Empty when unset.
conf_str() {
    sed -e 's/[[:space:]]*#.*$//' -e 's|[[:space:]]*//.*$||' "$CONF" \
        | sed -n -e "s/^\\(.*[[:space:];{]\\)\\{0,1\\}$1[[:space:]]*[=:][[:space:]]*\"\\([^\"]*\\)\".*/\\2/p" \
        | tail -n 1
}

# The first string of KEY = [ "...", ... ].
conf_first() {
    sed -e 's/[[:space:]]*#.*$//' -e 's|[[:space:]]*//.*$||' "$CONF" \
        | tr '\n' ' ' \
        | sed -n -e "s/.*[[:space:];{]$1[[:space:]]*[=:][[:space:]]*\\[[[:space:]]*\"\\([^\"]*\\)\".*/\\1/p"
}

USER_NAME=$(conf_str user)
GROUP_NAME=$(conf_str group)
[ -n "$GROUP_NAME" ] || GROUP_NAME=$USER_NAME
SECRET=$(conf_first secret_files)
STORAGE=$(conf_str dir)
STAGING=$(conf_str staging)

nologin=/usr/sbin/nologin
[ -x "$nologin" ] || nologin=/sbin/nologin
[ -x "$nologin" ] || nologin=/bin/false

# ---- the account
if [ -n "$GROUP_NAME" ] && ! getent group "$GROUP_NAME" >/dev/null; then
    if command -v groupadd >/dev/null 2>&1; then
        groupadd --system "$GROUP_NAME"
    else
        addgroup --system "$GROUP_NAME"
    fi
    say "created group $GROUP_NAME"
fi
if [ -n "$USER_NAME" ] && ! getent passwd "$USER_NAME" >/dev/null; then
    if command -v useradd >/dev/null 2>&1; then
        useradd --system --gid "$GROUP_NAME" --no-create-home \
            --home-dir /nonexistent --shell "$nologin" \
            --comment "hmac-file-server" "$USER_NAME"
    else
        adduser --system --ingroup "$GROUP_NAME" --no-create-home \
            --home /nonexistent --shell "$nologin" --disabled-login \
            --gecos "hmac-file-server" "$USER_NAME"
    fi
    say "created system user $USER_NAME"
fi
OWNER=root:root
[ -n "$USER_NAME" ] && OWNER=$USER_NAME:$GROUP_NAME
SECRET_GROUP=${GROUP_NAME:-root}

# ---- the secret: created beside its final name and linked into place, so
# a secret that appears meanwhile is never replaced and none is half-written.
random_hex() {
    if command -v openssl >/dev/null 2>&1; then
        openssl rand -hex 32
    else
        od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
        echo
    fi
}
if [ -n "$SECRET" ]; then
    if [ -e "$SECRET" ] || [ -L "$SECRET" ]; then
        say "keeping the existing secret $SECRET"
    else
        mkdir -p "$(dirname "$SECRET")"
        tmp=$(mktemp "$(dirname "$SECRET")/.secret.XXXXXX")
        trap 'rm -f "$tmp"' EXIT
        random_hex > "$tmp"
        [ "$(tr -d '\n' < "$tmp" | wc -c)" -eq 64 ] \
            || die "could not make 32 random bytes for $SECRET"
        chown "root:$SECRET_GROUP" "$tmp"
        chmod 0640 "$tmp"
        if ln "$tmp" "$SECRET" 2>/dev/null; then
            say "created the secret $SECRET (give it to the XMPP server)"
        else
            say "keeping the existing secret $SECRET"
        fi
        rm -f "$tmp"
        trap - EXIT
    fi
fi

# ---- the storage directories
for d in "$STORAGE" "$STAGING"; do
    [ -n "$d" ] || continue
    case $d in
        /*) ;;
        *) say "not creating $d: a relative path (the daemon makes it)"; continue ;;
    esac
    if [ ! -e "$d" ]; then
        mkdir -p "$(dirname "$d")"
        install -d -m 0750 -o "${OWNER%%:*}" -g "${OWNER#*:}" "$d"
        say "created $d ($OWNER, 0750)"
    fi
done

# ---- the configuration: readable by the group for reloads
if [ -n "$GROUP_NAME" ] && [ "$(stat -c %g "$CONF")" -eq 0 ]; then
    chgrp "$GROUP_NAME" "$CONF"
fi
exit 0
