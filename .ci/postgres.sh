#!/bin/sh
# Start a throwaway PostgreSQL server on loopback for the tests that need a
# real one, and print the URL they read (TEST_POSTGRES_URL).
set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
dir=${PGTEST_DIR:-/tmp/walkthrough-pg}
port=${PGTEST_PORT:-55432}
if ! [ -f "$dir/PG_VERSION" ]; then
	rm -rf "$dir"; mkdir -p "$dir"; chown postgres "$dir"
	runuser -u postgres -- "$bin/initdb" -D "$dir" -U postgres --auth=trust >/dev/null
fi
if ! runuser -u postgres -- "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
	runuser -u postgres -- "$bin/pg_ctl" -D "$dir" -l "$dir/log" -w \
		-o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200" start >/dev/null
fi
echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
