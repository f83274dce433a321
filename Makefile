# ferrolb: `make test` checks everything that needs no lab; `make lab` arrives with the lab.
#
#   make test    formatting, clippy, every unit and property test, CRD freshness
#   make crds    regenerate crds/ from the types in api/src
#
# `test` is a list of steps so that the lab can add its own (e.g. `test: check unit crds-check e2e`).

CARGO ?= cargo

.PHONY: test check fmt clippy unit crds crds-check

test: check unit crds-check

check: fmt clippy

fmt:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Unit and property tests (case counts are set in the tests, e.g. 10,000 for the address
# parser). The e2e crate needs the lab; its tests run with the lab's targets.
unit:
	$(CARGO) test --workspace --exclude ferrolb-e2e

crds:
	$(CARGO) run --quiet -p ferrolb-crdgen

# Fails when crds/ differs from what `make crds` writes.
crds-check:
	$(CARGO) test --quiet -p ferrolb-crdgen --test fresh
