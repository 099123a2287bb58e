#!/bin/sh
# Writes the secret and site-specific parts of Asterisk's configuration from the environment,
# then starts Asterisk. Nothing secret is in the repository or the image:
#   ARI_USER / ARI_PASS     -> ari.conf (password stored in crypt form, SHA-512)
#   AGENT_ENDPOINTS         -> pjsip_agents.conf (agent phones; default "200 201 202")
#   AGENT_SIP_PASSWORD      -> pjsip_auth.conf (the agents' SIP password)
#   TRUNK_MATCH             -> pjsip_trunk.conf (carrier addresses/CIDRs; default 127.0.0.1)
#   ASTERISK_SIP_PORT       -> pjsip.conf UDP transport port (default 5060)
#   ASTERISK_HTTP_BIND/PORT -> http.conf (private address; default 127.0.0.1:8088)
#   CALL_LANG               -> the endpoints' language (prompts; default es)
# ASTERISK_CONF_DIR (default /etc/asterisk) lets tests run it on a scratch directory.
set -eu

conf=${ASTERISK_CONF_DIR:-/etc/asterisk}
fail() { echo "asterisk entrypoint: $*" >&2; exit 1; }
word() { case "$2" in ""|*[!A-Za-z0-9_.:/,\ -]*) fail "$1=$2: unexpected characters";; esac; }
number() { case "$2" in ""|*[!0-9]*) fail "$1=$2: not a port number";; esac; }

[ -n "${ARI_PASS:-}" ] || fail "ARI_PASS is not set (no default password is shipped)"
[ -n "${AGENT_SIP_PASSWORD:-}" ] || fail "AGENT_SIP_PASSWORD is not set"
ari_user=${ARI_USER:-coach}
case "$ari_user" in *[!A-Za-z0-9_-]*) fail "ARI_USER=$ari_user: use letters, digits, _ or -";; esac
agents=${AGENT_ENDPOINTS:-200 201 202}
word AGENT_ENDPOINTS "$agents"
trunk_match=${TRUNK_MATCH:-127.0.0.1}
word TRUNK_MATCH "$trunk_match"
sip_port=${ASTERISK_SIP_PORT:-5060}
number ASTERISK_SIP_PORT "$sip_port"
http_port=${ASTERISK_HTTP_PORT:-8088}
number ASTERISK_HTTP_PORT "$http_port"
lang=${CALL_LANG:-es}
case "$lang" in *[!a-zA-Z_]*) fail "CALL_LANG=$lang: a language code like es or en";; esac

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
  echo "[trunk]"
  echo "type=identify"
  echo "endpoint=trunk"
  for net in $(echo "$trunk_match" | tr ',' ' '); do echo "match=$net"; done
} > "$conf/pjsip_trunk.conf"

{
  echo "; Written by docker-entrypoint.sh at container start; do not edit."
  for agent in $(echo "$agents" | tr ',' ' '); do
    case "$agent" in *[!A-Za-z0-9_-]*) fail "AGENT_ENDPOINTS: $agent is not an endpoint name";; esac
    printf '[%s](agent-endpoint)\nauth=%s-auth\naors=%s\n[%s](agent-aor)\n\n' \
      "$agent" "$agent" "$agent" "$agent"
  done
} > "$conf/pjsip_agents.conf"

{
  echo "; Written by docker-entrypoint.sh at container start; do not edit."
  for agent in $(echo "$agents" | tr ',' ' '); do
    printf '[%s-auth]\ntype=auth\nauth_type=userpass\nusername=%s\npassword=%s\n\n' \
      "$agent" "$agent" "$AGENT_SIP_PASSWORD"
  done
} > "$conf/pjsip_auth.conf"

sed -i "s/^bind=0\.0\.0\.0:[0-9]*$/bind=0.0.0.0:${sip_port}/" "$conf/pjsip.conf"
sed -i "s/^language=.*/language=${lang}/" "$conf/pjsip.conf"
sed -i "s/^bindport=.*/bindport=${http_port}/" "$conf/http.conf"
if [ -n "${ASTERISK_HTTP_BIND:-}" ]; then
  word ASTERISK_HTTP_BIND "$ASTERISK_HTTP_BIND"
  sed -i "s/^bindaddr=.*/bindaddr=${ASTERISK_HTTP_BIND}/" "$conf/http.conf"
fi

[ "$#" -gt 0 ] || set -- asterisk -f -U asterisk -G asterisk
exec "$@"
