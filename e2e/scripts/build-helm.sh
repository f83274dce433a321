#!/usr/bin/env bash
# Builds Helm from its Go module through the module proxy, once per version, into a cache
# outside the repository (beside the Kubernetes binaries of build-k8s.sh). Prints the path of
# the helm binary.
#
# Helm 4: the current major line (Helm 3 only gets fixes); the chart is apiVersion v2, which
# Helm 3 installs the same way, so users on either can use it.
set -euo pipefail

# The version, pinned here and nowhere else.
HELM_VERSION=v4.3.1

cache=${FERROLB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb}
out=$cache/helm-$HELM_VERSION
if [ -x "$out/helm" ]; then echo "$out/helm"; exit 0; fi

log() { echo "build-helm: $*" >&2; }

# Helm 4.3's go.mod says go 1.26, and GOTOOLCHAIN=local forbids fetching one.
GO_MIN=1.26
if ! command -v go >/dev/null 2>&1; then
  log "no Go toolchain on PATH: install Go $GO_MIN or newer (https://go.dev/dl/), then run this again"
  exit 1
fi
go_have=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$GO_MIN" "$go_have" | sort -V | head -n1)" != "$GO_MIN" ]; then
  log "Go $go_have is older than the $GO_MIN that Helm $HELM_VERSION needs"
  exit 1
fi

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
jobs=${FERROLB_GO_JOBS:-2}
mkdir -p "$cache"
work=$(mktemp -d "$cache/build-helm.XXXXXX")
trap 'rm -rf "$work"' EXIT

# A throw-away module that requires Helm at the pinned version: the build resolves every
# dependency version through Helm's own go.mod (minimal version selection).
cd "$work"
go mod init ferrolb.invalid/helmbuild >/dev/null 2>&1
go mod edit -require="helm.sh/helm/v4@$HELM_VERSION"
log "building helm $HELM_VERSION with -p $jobs"
mkdir -p "$out.partial"
# The version stamp is what Helm's Makefile sets for a release build: `helm version` and the
# chart's kubeVersion/Capabilities checks read it.
go build -p "$jobs" -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
  -o "$out.partial/helm" helm.sh/helm/v4/cmd/helm
"$out.partial/helm" version >/dev/null
rm -rf "$out" && mv "$out.partial" "$out"
echo "$out/helm"
