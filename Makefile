# ferrolb: `make lab` shows it working on a real API server and a routed network; `make test`
# checks everything, the lab's end-to-end tests included. Both run as root.
#
#   make lab       build, start the lab (.lab/), apply examples/lab/, show the demo
#   make lab-down  stop the lab and remove everything it made
#   make test      formatting, clippy, every unit and property test, CRD freshness, e2e
#   make e2e       the end-to-end tests alone (each test binary brings up its own lab)
#   make crds      regenerate crds/ from the types in api/src
#
# `test` is a list of steps; each is a target of its own.

CARGO ?= cargo

.PHONY: test check fmt clippy unit crds crds-check lab lab-down e2e

test: check unit crds-check e2e

check: fmt clippy

fmt:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Unit and property tests (case counts are set in the tests, e.g. 10,000 for the address
# parser). The e2e crate needs the lab; its tests run in `e2e`.
unit:
	$(CARGO) test --workspace --exclude ferrolb-e2e

crds:
	$(CARGO) run --quiet -p ferrolb-crdgen

# Fails when crds/ differs from what `make crds` writes.
crds-check:
	$(CARGO) test --quiet -p ferrolb-crdgen --test fresh

# The lab's `lab` binary, and where cargo puts ferrolb's binaries for it.
LAB := $(or $(CARGO_TARGET_DIR),target)/debug/lab

# The first run builds Kubernetes and etcd from source (e2e/scripts/build-k8s.sh, about 15
# minutes, cached in ~/.cache/ferrolb); later runs take seconds.
lab:
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
