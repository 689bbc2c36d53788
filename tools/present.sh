#!/bin/sh
# Prints one line per tool a test skips without, with where it is, or
# "absent". make test puts the result in TOOLS_PRESENT for every test, and
# each test that skips for a missing tool reads that variable: go test's
# cache keys a result on the environment variables the test read (files it
# stat'ed count only inside the module, so exec.LookPath of /usr/bin/protoc
# does not), so once a tool appears the test runs again instead of having
# its skip replayed from the cache.
cd "$(dirname "$0")/.."
for tool in protoc chromium make tini dumb-init unshare dash bash; do
	printf '%s=%s\n' "$tool" "$(command -v "$tool" || echo absent)"
done
# nginx and HAProxy (step 15): Debian puts both in /usr/sbin, which a
# user's PATH may not have; the tests look there too.
for tool in nginx haproxy; do
	printf '%s=%s\n' "$tool" "$(command -v "$tool" || { [ -x "/usr/sbin/$tool" ] && echo "/usr/sbin/$tool"; } || echo absent)"
done
# grpcurl's and nats-server's modules are in the module cache when go tool
# can build them without the network (nats-server's are the root module's
# own, so they are there once step 16 builds).
for tool in grpcurl nats-server; do
	printf '%s=%s\n' "$tool" "$(GOPROXY=off go tool -modfile=tools/go.mod -n "$tool" 2>/dev/null || echo absent)"
done
# Jaeger (step 16's TestSpansInJaeger) is pinned in a go.mod of its own,
# tools/jaeger/go.mod: its modules are not the others' (about 270 MB).
printf 'jaeger=%s\n' "$(GOPROXY=off go tool -modfile=tools/jaeger/go.mod -n jaeger 2>/dev/null || echo absent)"
