#!/bin/sh
# Writes the secret and site-specific parts of Asterisk's configuration from the environment,
# then starts Asterisk. Nothing secret is in the repository or the image:
#   ARI_USER / ARI_PASS     -> ari.conf (password stored in crypt form, SHA-512)
#   AGENT_ENDPOINTS         -> pjsip_agents.conf (agent phones; default "200 201 202")
#   SIP_SECRETS_FILE        -> pjsip_auth.conf: one `endpoint secret` a line, a secret for
#                              every agent endpoint and for `trunk` (the carrier's digest
#                              credentials); weak secrets stop the start
#   TRUNK_MATCH             -> pjsip_trunk.conf (carrier addresses/CIDRs; default 127.0.0.1;
#                              also the only addresses the trunk accepts requests from)
#   AGENT_PERMIT            -> the addresses agents may register and call from (CIDRs;
#                              default loopback and the private ranges)
#   ASTERISK_SIP_PORT       -> pjsip.conf UDP transport port (default 5060)
#   ASTERISK_HTTP_BIND/PORT -> http.conf (private address; default 127.0.0.1:8088)
#   CALL_LANG               -> the endpoints' language (prompts; default es)
#   CALL_LANG_NUMBERS       -> extensions_lang.conf: per dialled number, the language its calls
#                              are spoken, transcribed and prompted in ("901=en 902=es"; calls
#                              to other numbers use CALL_LANG)
#   AMI_USER / AMI_SECRET   -> manager_users.conf: the one AMI user (default coach-recording),
#                              write=call only (MixMonitorMute: pause/resume a recording), no
#                              events; loopback only; a weak or missing secret stops the start
#   ASTERISK_AMI_PORT       -> manager.conf port on 127.0.0.1 (default 5038)
#   RECORDING_DISCLOSURE    -> the dialplan global of the same name: a sound played to the
#                              caller before recording starts (e.g. custom/recording-notice;
#                              empty = none)
# ASTERISK_CONF_DIR (default /etc/asterisk) lets tests run it on a scratch directory.
set -eu

conf=${ASTERISK_CONF_DIR:-/etc/asterisk}
fail() { echo "asterisk entrypoint: $*" >&2; exit 1; }
word() { case "$2" in ""|*[!A-Za-z0-9_.:/,\ -]*) fail "$1=$2: unexpected characters";; esac; }
number() { case "$2" in ""|*[!0-9]*) fail "$1=$2: not a port number";; esac; }

[ -n "${ARI_PASS:-}" ] || fail "ARI_PASS is not set (no default password is shipped)"
secrets_file=${SIP_SECRETS_FILE:-}
[ -n "$secrets_file" ] || fail "SIP_SECRETS_FILE is not set (one 'endpoint secret' a line; python -m relay sip-secrets)"
[ -r "$secrets_file" ] || fail "SIP_SECRETS_FILE=$secrets_file: cannot read it"
agent_permit=${AGENT_PERMIT:-127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16}
word AGENT_PERMIT "$agent_permit"
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
lang_numbers=${CALL_LANG_NUMBERS:-}
for pair in $lang_numbers; do
  number=${pair%%=*} call_lang=${pair#*=}
  case "$number" in ""|*[!0-9+]*) fail "CALL_LANG_NUMBERS: '$pair' is not number=lang (e.g. 901=en)";; esac
  case "$call_lang" in [a-z][a-z]|[a-z][a-z][a-z]) ;; *) fail "CALL_LANG_NUMBERS: '$pair': the language must be a code like en or es";; esac
done
ami_port=${ASTERISK_AMI_PORT:-5038}
number ASTERISK_AMI_PORT "$ami_port"
ami_user=${AMI_USER:-coach-recording}
case "$ami_user" in ""|*[!A-Za-z0-9_-]*) fail "AMI_USER=$ami_user: use letters, digits, _ or -";; esac
disclosure=${RECORDING_DISCLOSURE:-}
# A sound name as Playback takes it (no extension); `&` joins several.
case "$disclosure" in *[!A-Za-z0-9_/\&-]*|/*|*..*) fail "RECORDING_DISCLOSURE=$disclosure: a sound name like custom/recording-notice";; esac

# A secret stops the start unless it is strong: at least 16 characters of at least 3 kinds
# (lower, upper, digits, others), none that a configuration file would take for syntax
# (spaces, ; # [ ] = "). $1 names it in the message.
strong() {
  case "$2" in *[!A-Za-z0-9._~+/@%^*!:,-]*) fail "$1 has characters the configuration cannot hold";; esac
  [ "${#2}" -ge 16 ] || fail "$1 is shorter than 16 characters"
  kinds=0
  for class in '[a-z]' '[A-Z]' '[0-9]' '[^A-Za-z0-9]'; do
    if printf '%s' "$2" | grep -q "$class"; then kinds=$((kinds + 1)); fi
  done
  [ "$kinds" -ge 3 ] || fail "$1 needs 3 of: lower, upper, digits, others"
}
[ -n "${AMI_SECRET:-}" ] || fail "AMI_SECRET is not set (the recording-pause user's secret; no default is shipped: python -m relay secrets)"
strong AMI_SECRET "$AMI_SECRET"

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

# The secret of one endpoint from SIP_SECRETS_FILE; refuses a missing or weak one (strong).
secret_of() {
  s=$(awk -v e="$1" '$1 == e { print $2; exit }' "$secrets_file")
  [ -n "$s" ] || fail "SIP_SECRETS_FILE has no secret for endpoint $1"
  strong "SIP_SECRETS_FILE: the secret of $1" "$s"
  printf '%s' "$s"
}

# PJSIP's ACL applies to every SIP request (res_pjsip_acl): only the carrier's and the
# agents' addresses are heard at all; the trunk is then only the carrier's (identify).
{
  echo "; Written by docker-entrypoint.sh at container start; do not edit."
  echo "[coach-acl]"
  echo "type=acl"
  echo "deny=0.0.0.0/0.0.0.0"
  for net in $(echo "$trunk_match,$agent_permit" | tr ',' ' '); do echo "permit=$net"; done
} > "$conf/pjsip_acl.conf"

{
  echo "; Written by docker-entrypoint.sh at container start; do not edit."
  echo "[trunk](trunk-endpoint)"
  echo "auth=trunk-auth"
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

auth_conf="$conf/pjsip_auth.conf"
{
  echo "; Written by docker-entrypoint.sh at container start; do not edit."
  for agent in $(echo "$agents" | tr ',' ' '); do
    secret=$(secret_of "$agent") || exit 1
    printf '[%s-auth]\ntype=auth\nauth_type=userpass\nusername=%s\npassword=%s\n\n' \
      "$agent" "$agent" "$secret"
  done
  secret=$(secret_of trunk) || exit 1
  printf '[trunk-auth]\ntype=auth\nauth_type=userpass\nusername=trunk\npassword=%s\n\n' "$secret"
} > "$auth_conf.tmp" || exit 1
mv "$auth_conf.tmp" "$auth_conf"

# AMI: one user, only from loopback, may write `call` actions (MixMonitorMute is
# EVENT_FLAG_SYSTEM | EVENT_FLAG_CALL in app_mixmonitor.c; either grants it) and reads nothing.
cat > "$conf/manager_users.conf" <<AMI
; Written by docker-entrypoint.sh at container start; do not edit.
[$ami_user]
secret = $AMI_SECRET
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read =
write = call
displayconnects = no
writetimeout = 1000
AMI

sed -i "s/^port=.*/port=${ami_port}/" "$conf/manager.conf"
# `&` (several sounds) means "the match" to sed: escaped.
disclosure_sed=$(printf '%s' "$disclosure" | sed 's/&/\\\&/g')
sed -i "s|^RECORDING_DISCLOSURE=.*|RECORDING_DISCLOSURE=${disclosure_sed}|" "$conf/extensions.conf"
{
  echo "; Written by docker-entrypoint.sh from CALL_LANG_NUMBERS; do not edit."
  for pair in $lang_numbers; do
    # `+` is not a character a dialplan variable name may hold: the global drops it.
    number=$(printf '%s' "${pair%%=*}" | tr -d '+')
    echo "COACH_LANG_${number}=${pair#*=}"
  done
} > "$conf/extensions_lang.conf"
sed -i "s/^bind=0\.0\.0\.0:[0-9]*$/bind=0.0.0.0:${sip_port}/" "$conf/pjsip.conf"
sed -i "s/^language=.*/language=${lang}/" "$conf/pjsip.conf"
sed -i "s/^bindport=.*/bindport=${http_port}/" "$conf/http.conf"
if [ -n "${ASTERISK_HTTP_BIND:-}" ]; then
  word ASTERISK_HTTP_BIND "$ASTERISK_HTTP_BIND"
  sed -i "s/^bindaddr=.*/bindaddr=${ASTERISK_HTTP_BIND}/" "$conf/http.conf"
fi

# The config above holds secrets: written under umask 077. Recordings are for the relay's audio
# route and the second pass, which run as their own uid in Asterisk's group (compose group_add
# 101): group-readable, nothing for others.
umask 027
[ "$#" -gt 0 ] || set -- asterisk -f -U asterisk -G asterisk
exec "$@"
