# ferrolb: `make lab` shows it working on a real API server and a routed network; `make test`
# checks everything, the lab's end-to-end tests included. Both run as root.
#
#   make lab       install missing Debian packages, build, start the lab (.lab/), apply
#                  examples/lab/, show the demo
#   make lab-down  stop the lab and remove everything it made
#   make test      missing Debian packages, formatting, clippy, every unit and property
#                  test, CRD freshness, e2e
#   make e2e       the end-to-end tests alone (each test binary brings up its own lab)
#   make crds      regenerate crds/ (and the chart's copy) from the types in api/src
#   make chart-lint  helm lint of charts/ferrolb with its default and its other value sets
#   make bench     every benchmark at full size on release builds (not in `make test`):
#                  bench/results/<UTC>.json, bench/REPORT.md, bench/plots/ (bench/README.md)
#   make bench-smoke  every benchmark at a tiny size (part of `make test`), into target/bench-smoke
#
# `test` is a list of steps; each is a target of its own.

CARGO ?= cargo

# `packages` installs the Debian packages the lab and the tests use, only those missing.
.PHONY: packages test check fmt clippy unit crds crds-check chart-lint lab lab-down e2e bench bench-smoke

test: packages check unit crds-check chart-lint e2e bench-smoke

packages:
	@bash e2e/scripts/install-packages.sh

check: fmt clippy

fmt:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Unit and property tests (case counts are set in the tests, e.g. 10,000 for the address
# parser). The e2e crate needs the lab; its tests run in `e2e`.
unit:
	$(CARGO) test --workspace --exclude ferrolb-e2e

# The chart carries the same CRDs (Helm installs a chart's crds/ directory).
crds:
	$(CARGO) run --quiet -p ferrolb-crdgen
	$(CARGO) run --quiet -p ferrolb-crdgen -- charts/ferrolb/crds

# Fails when crds/ or the chart's copy differs from what `make crds` writes.
crds-check:
	$(CARGO) test --quiet -p ferrolb-crdgen --test fresh --test chart

# Helm is built from its Go module on first use (e2e/scripts/build-helm.sh, cached in
# ~/.cache/ferrolb). --strict turns warnings into failures; each value set exercises templates
# the defaults leave out. The rendered objects are checked in e2e/tests/chart*.rs.
CHART_VALUE_SETS := \
	"" \
	"--set l2.enabled=false,bgp.enabled=false,membership.enabled=false" \
	"--set metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true,loadBalancerClass=example.org/lb" \
	"--set bgp.passwordSecrets={peer-a,peer-b},membership.existingSecret=own-key,speaker.l2ReannounceInterval=30s"

chart-lint:
	@helm=$$(bash e2e/scripts/build-helm.sh) && for v in $(CHART_VALUE_SETS); do \
		echo "helm lint --strict charts/ferrolb $$v"; \
		$$helm lint --strict charts/ferrolb $$v || exit 1; \
	done

# The lab's `lab` binary, and where cargo puts ferrolb's binaries for it.
LAB := $(or $(CARGO_TARGET_DIR),target)/debug/lab

# The first run builds Kubernetes and etcd from source (e2e/scripts/build-k8s.sh, about 15
# minutes, cached in ~/.cache/ferrolb); later runs take seconds.
lab: packages
	$(CARGO) build --bins
	$(LAB) up
	$(LAB) demo

lab-down:
	$(CARGO) build --quiet -p ferrolb-e2e --bin lab
	$(LAB) down

# One lab at a time per machine: each test binary's lab waits for the previous one to go;
# every binary runs even when one fails.
# The final `lab down` waits for the last one and leaves nothing behind, pass or fail.
e2e:
	$(CARGO) build --bins
	$(CARGO) test -p ferrolb-e2e --no-fail-fast; status=$$?; $(LAB) down; exit $$status

# Benchmarks (bench/README.md): the bench binary builds what it runs, runs the allocator's
# criterion bench and every e2e/tests/*_bench.rs program (each in its own lab, one after the
# other), and writes the results, the report and the plots. It fails when a program fails or
# writes no figure; a missed target is reported, not a failure. 37–45 minutes on the 2-core
# lab machine, most of it the API server creating 10,000 Services (README, Benchmarks).
bench: packages
	$(CARGO) run --quiet -p ferrolb-bench -- run --release --size full --out bench

# The same programs at FERROLB_BENCH_SIZE=smoke on the dev build `make test` already made, so
# the benchmark code cannot rot; the report and plots go to target/bench-smoke/ (not committed).
bench-smoke:
	$(CARGO) run --quiet -p ferrolb-bench -- run --size smoke --out $(or $(CARGO_TARGET_DIR),target)/bench-smoke --timeout-min 10
