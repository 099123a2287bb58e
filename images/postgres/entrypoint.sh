#!/bin/sh
# The call record's PostgreSQL: create the cluster on first start (scram passwords over TCP,
# peer on the socket), make or update the roles and the `coach` database (coach/record/roles.py
# says what each role may do; the archive's migrations grant the others their rights), then
# run the server on 127.0.0.1 only (PG_LISTEN to widen it).
set -eu

fail() { echo "postgres: $*" >&2; exit 2; }
for var in PG_ARCHIVE_PASSWORD PG_RELAY_PASSWORD PG_RETENTION_PASSWORD; do
  eval "value=\${$var:-}"
  # shellcheck disable=SC2154 # set by the eval
  [ "${#value}" -ge 16 ] || fail "$var: at least 16 characters (python -m relay secrets makes them)"
done

PGDATA=${PGDATA:-/var/lib/postgresql/data}
SOCKETS=${PG_SOCKETS:-/tmp}
# PG_BIN: another installation's binaries (the tests run this script on the embedded wheel's).
BIN=${PG_BIN:-$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d | sort -V | tail -1)}
[ -n "$BIN" ] || fail "no PostgreSQL binaries under /usr/lib/postgresql"

# The cluster's superuser is the system user the server runs as (postgres in the image), so
# the socket's peer authentication lets this script in and nobody else.
SUPER=$(id -un)
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  "$BIN/initdb" -D "$PGDATA" -U "$SUPER" --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
fi

# Provision over the socket only, before anything can connect over TCP.
"$BIN/pg_ctl" -D "$PGDATA" -o "-c listen_addresses='' -k $SOCKETS" -w -l "$SOCKETS/provision.log" start >/dev/null
"$BIN/psql" -h "$SOCKETS" -U "$SUPER" -d postgres -q -v ON_ERROR_STOP=1 \
  -v archive="$PG_ARCHIVE_PASSWORD" -v reader="$PG_RELAY_PASSWORD" \
  -v retention="$PG_RETENTION_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', r)
  FROM unnest(ARRAY['coach_archive', 'coach_reader', 'coach_retention']) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec
ALTER ROLE coach_archive PASSWORD :'archive';
ALTER ROLE coach_reader PASSWORD :'reader';
ALTER ROLE coach_retention PASSWORD :'retention';
SELECT 'CREATE DATABASE coach OWNER coach_archive ENCODING ''UTF8'' TEMPLATE template0'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'coach') \gexec
REVOKE ALL ON DATABASE coach FROM PUBLIC;
GRANT CONNECT ON DATABASE coach TO coach_archive, coach_reader, coach_retention;
SQL
"$BIN/pg_ctl" -D "$PGDATA" -w stop >/dev/null

exec "$BIN/postgres" -D "$PGDATA" -c listen_addresses="${PG_LISTEN:-127.0.0.1}" \
  -p "${PG_PORT:-5432}" -k "$SOCKETS"
