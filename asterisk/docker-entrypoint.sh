#!/bin/sh
# Writes the secret parts of Asterisk's configuration from the environment, then starts
# Asterisk. Nothing secret is in the repository or the image:
#   ARI_USER / ARI_PASS     -> ari.conf (password stored in crypt form, SHA-512)
#   AGENT_SIP_PASSWORD      -> pjsip_auth.conf (agents 200..202)
#   TRUNK_SIP_PASSWORD      -> pjsip_auth.conf (inbound trunk)
#   ASTERISK_HTTP_BIND      -> http.conf bindaddr (private address; default 127.0.0.1)
# ASTERISK_CONF_DIR (default /etc/asterisk) lets tests run it on a scratch directory.
set -eu

conf=${ASTERISK_CONF_DIR:-/etc/asterisk}
fail() { echo "asterisk entrypoint: $*" >&2; exit 1; }

[ -n "${ARI_PASS:-}" ] || fail "ARI_PASS is not set (no default password is shipped)"
[ -n "${AGENT_SIP_PASSWORD:-}" ] || fail "AGENT_SIP_PASSWORD is not set"
ari_user=${ARI_USER:-coach}
case "$ari_user" in *[!A-Za-z0-9_-]*) fail "ARI_USER=$ari_user: use letters, digits, _ or -";; esac

umask 077
hash=$(printf '%s' "$ARI_PASS" | openssl passwd -6 -stdin) || fail "openssl passwd failed"
cat > "$conf/ari.conf" <<ARI
; Written by docker-entrypoint.sh at container start; do not edit.
[general]
enabled = yes
pretty = no
allowed_origins =

[$ari_user]
type = user
read_only = no
password = $hash
password_format = crypt
ARI

{
  echo "; Written by docker-entrypoint.sh at container start; do not edit."
  for agent in 200 201 202; do
    printf '[%s-auth]\ntype=auth\nauth_type=userpass\nusername=%s\npassword=%s\n\n' \
      "$agent" "$agent" "$AGENT_SIP_PASSWORD"
  done
  printf '[trunk-auth]\ntype=auth\nauth_type=userpass\nusername=trunk\npassword=%s\n' \
    "${TRUNK_SIP_PASSWORD:-$AGENT_SIP_PASSWORD}"
} > "$conf/pjsip_auth.conf"

if [ -n "${ASTERISK_HTTP_BIND:-}" ]; then
  sed -i "s/^bindaddr=.*/bindaddr=${ASTERISK_HTTP_BIND}/" "$conf/http.conf"
fi

[ "$#" -gt 0 ] || set -- asterisk -f -U asterisk -G asterisk
exec "$@"
