#!/bin/sh
# Generates step 14's Go code from 14-grpc/slow.proto into the folder given
# (14-grpc/slowpb for make generate; a temporary one for the test that
# checks the committed code is current). The plugins are the versions
# pinned in tools/go.mod, built by go tool; protoc is Debian's
# protobuf-compiler, and the well-known types' .proto files come from
# libprotobuf-dev (/usr/include).
set -eu
out=${1:?usage: tools/protoc.sh OUTDIR}
cd "$(dirname "$0")/.."
if ! command -v protoc >/dev/null 2>&1; then
	echo "protoc not found: apt-get install protobuf-compiler libprotobuf-dev (Debian), brew install protobuf (macOS)" >&2
	exit 2
fi
go_plugin=$(go tool -modfile=tools/go.mod -n protoc-gen-go)
grpc_plugin=$(go tool -modfile=tools/go.mod -n protoc-gen-go-grpc)
mkdir -p "$out"
protoc -I 14-grpc \
	--plugin=protoc-gen-go="$go_plugin" --go_out="$out" --go_opt=paths=source_relative \
	--plugin=protoc-gen-go-grpc="$grpc_plugin" --go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
	slow.proto
