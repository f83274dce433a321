#!/usr/bin/env bash
# Builds the lab's control-plane binaries (kube-apiserver, kube-controller-manager, kubectl,
# etcd) from their Go modules through the module proxy, once per version, into a cache
# outside the repository. Prints the directory that holds them.
#
# `go install k8s.io/kubernetes/cmd/...@v1.34.x` refuses the module because its go.mod
# replaces the staging modules with local paths; a throw-away wrapper module that requires
# k8s.io/kubernetes and maps each staging module to its published v0.34.x tag builds it.
set -euo pipefail

# The versions, pinned here and nowhere else.
K8S_VERSION=v1.34.4
STAGING_VERSION=v0.34.4
ETCD_VERSION=v3.6.16

cache=${FERROLB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb}
out=$cache/k8s-$K8S_VERSION-etcd-$ETCD_VERSION
want=(kube-apiserver kube-controller-manager kubectl etcd)

have_all() { for b in "${want[@]}"; do [ -x "$out/$b" ] || return 1; done; }
if have_all; then echo "$out"; exit 0; fi

log() { echo "build-k8s: $*" >&2; }

# One build at a time per cache: two labs (or `make lab` and a test) starting together on a
# cold cache would each take twice as long and race for the final rename.
mkdir -p "$cache"
exec 9>"$cache/.k8s-build.lock"
if ! flock -n 9; then
  log "another build of the same binaries is running; waiting for it"
  flock 9
fi
if have_all; then echo "$out"; exit 0; fi

# Kubernetes 1.34 and etcd 3.6 need Go 1.24 or newer, and GOTOOLCHAIN=local forbids fetching one.
GO_MIN=1.24
if ! command -v go >/dev/null 2>&1; then
  log "no Go toolchain on PATH: install Go $GO_MIN or newer (https://go.dev/dl/), then run this again"
  exit 1
fi
go_have=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$GO_MIN" "$go_have" | sort -V | head -n1)" != "$GO_MIN" ]; then
  log "Go $go_have is older than the $GO_MIN that Kubernetes $K8S_VERSION needs"
  exit 1
fi

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
jobs=${FERROLB_GO_JOBS:-2}
work=$(mktemp -d "$cache/build.XXXXXX" 2>/dev/null || { mkdir -p "$cache"; mktemp -d "$cache/build.XXXXXX"; })
trap 'rm -rf "$work"' EXIT
mkdir -p "$out.partial"

# --- Kubernetes ---
mkdir -p "$work/k8s" && cd "$work/k8s"
go mod init ferrolb.invalid/k8sbuild >/dev/null 2>&1
go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
staging=$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$modfile")
[ -n "$staging" ] || { log "no staging replaces found in $modfile"; exit 1; }
for m in $staging; do go mod edit -replace="$m=$m@$STAGING_VERSION"; done
log "kubernetes $K8S_VERSION: $(echo "$staging" | wc -l) staging modules at $STAGING_VERSION; building with -p $jobs"
for cmd in kube-apiserver kube-controller-manager kubectl; do
  [ -x "$out.partial/$cmd" ] && continue
  log "building $cmd"
  go build -p "$jobs" -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION" \
    -o "$out.partial/$cmd" "k8s.io/kubernetes/cmd/$cmd"
done

# --- etcd --- (Debian's 3.4 is older than Kubernetes 1.34 supports)
if [ ! -x "$out.partial/etcd" ]; then
  mkdir -p "$work/etcd" && cd "$work/etcd"
  go mod init ferrolb.invalid/etcdbuild >/dev/null 2>&1
  cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  log "building etcd $ETCD_VERSION"
  go build -p "$jobs" -trimpath -ldflags "-s -w" -o "$out.partial/etcd" .
fi

rm -rf "$out" && mv "$out.partial" "$out"
echo "$out"
