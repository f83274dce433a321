#!/usr/bin/env bash
# Builds `promql-check`, a small program around Prometheus' own PromQL parser (its Go module,
# pinned), once per version, into the cache beside the Kubernetes binaries. The chart's
# alerting rules are checked with it (e2e/tests/chart_render.rs). Prints the binary's path.
#
# Usage of the result: a JSON array of expressions on stdin; exit 0 when each parses, else
# exit 1 with one line per expression that does not.
set -euo pipefail

# The version, pinned here and nowhere else (module v0.316.0 is Prometheus 3.16.0).
PROMETHEUS_MODULE_VERSION=v0.316.0

cache=${FERROLB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb}
out=$cache/promql-check-$PROMETHEUS_MODULE_VERSION
if [ -x "$out/promql-check" ]; then echo "$out/promql-check"; exit 0; fi

log() { echo "build-promql-check: $*" >&2; }

# The module's go.mod says go 1.26.7, and GOTOOLCHAIN=local forbids fetching one.
GO_MIN=1.26.7
if ! command -v go >/dev/null 2>&1; then
  log "no Go toolchain on PATH: install Go $GO_MIN or newer (https://go.dev/dl/), then run this again"
  exit 1
fi
go_have=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$GO_MIN" "$go_have" | sort -V | head -n1)" != "$GO_MIN" ]; then
  log "Go $go_have is older than the $GO_MIN that Prometheus $PROMETHEUS_MODULE_VERSION needs"
  exit 1
fi

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
mkdir -p "$cache"
work=$(mktemp -d "$cache/build-promql.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init ferrolb.invalid/promqlcheck >/dev/null 2>&1
go mod edit -require="github.com/prometheus/prometheus@$PROMETHEUS_MODULE_VERSION"
cat > main.go <<'GO'
// promql-check parses each expression of a JSON array read from stdin with Prometheus'
// PromQL parser.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	var exprs []string
	if err := json.NewDecoder(os.Stdin).Decode(&exprs); err != nil {
		fmt.Println("stdin is not a JSON array of strings:", err)
		os.Exit(2)
	}
	p := parser.NewParser(parser.Options{})
	bad := 0
	for i, e := range exprs {
		if _, err := p.ParseExpr(e); err != nil {
			fmt.Printf("expression %d: %v\n", i, err)
			bad++
		}
	}
	if bad > 0 {
		os.Exit(1)
	}
}
GO
log "building promql-check on Prometheus $PROMETHEUS_MODULE_VERSION"
mkdir -p "$out.partial"
go build -p "${FERROLB_GO_JOBS:-2}" -trimpath -ldflags "-s -w" -o "$out.partial/promql-check" .
rm -rf "$out" && mv "$out.partial" "$out"
echo "$out/promql-check"
