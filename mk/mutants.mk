# Mutation testing (TESTING.md): `make mutants` runs cargo-mutants over the
# core's files one at a time, each with the tests that cover it, and prints
# one line per file: caught / missed / equivalent / percentage. Not part of
# `make test`: it is slow (hours for every file on two cores).
#
# The tool is installed here, pinned, into target/tools (never by hand):
# `make mutants-tools`. MUTANTS_FILES limits the run to some of the files
# (`make mutants MUTANTS_FILES="process gc"`); MUTANTS_TIMEOUT is the
# per-mutant test timeout in seconds; MUTANTS_JOBS the parallel jobs.
# Survivors that are equivalent (no test can tell them from the original)
# are listed with a reason in mutants-equivalent.txt and counted apart.

CARGO_MUTANTS_VERSION := 25.3.1
MUTANTS_ROOT := target/tools
CARGO_MUTANTS := $(MUTANTS_ROOT)/bin/cargo-mutants
MUTANTS_OUT := target/mutants
MUTANTS_TIMEOUT ?= 300
MUTANTS_JOBS ?= 1
MUTANTS_FILES ?= process gc stop metadata read probe authority trust watch
# More cargo-mutants options, e.g. `--in-place` (mutate this tree and reuse
# its target/: fast, but leave the tree alone meanwhile) or `--re judge`.
MUTANTS_ARGS ?=

# Each file's mutants and the tests that cover it: FILE => cargo test
# targets. The library's unit tests always run; the integration test
# binaries named here are the ones that exercise that file. They are given
# to cargo-mutants as --cargo-arg, so that each mutant's build compiles
# only these targets (after `--` they would narrow the test run only, and
# every test binary of the package would be built for every mutant).
MUTANTS_SRC := src/sidecar_markers
mutants_files_process := $(MUTANTS_SRC)/process.rs $(MUTANTS_SRC)/procfs.rs
mutants_tests_process := --lib --test=liveness --test=probing --test=stop
mutants_files_gc := $(MUTANTS_SRC)/gc.rs
mutants_tests_gc := --lib --test=collection --test=stop --test=isolation
mutants_files_stop := $(MUTANTS_SRC)/stop.rs
mutants_tests_stop := --lib --test=stop --test=isolation
mutants_files_metadata := $(MUTANTS_SRC)/metadata.rs
mutants_tests_metadata := --lib --test=isolation --test=writer --test=reliability
mutants_files_read := $(MUTANTS_SRC)/read.rs
mutants_tests_read := --lib --test=collection --test=isolation --test=probing --test=cli
mutants_files_probe := $(MUTANTS_SRC)/probe/*.rs
mutants_tests_probe := --lib --test=probing --test=reliability
mutants_files_authority := $(MUTANTS_SRC)/authority.rs
mutants_tests_authority := --lib --test=isolation
mutants_files_trust := $(MUTANTS_SRC)/trust.rs
mutants_tests_trust := --lib --test=isolation
mutants_files_watch := $(MUTANTS_SRC)/watch/*.rs
mutants_tests_watch := --lib --test=watch --test=cli

.PHONY: mutants mutants-tools

## mutants-tools: install the pinned cargo-mutants into target/tools.
mutants-tools: $(CARGO_MUTANTS)

$(CARGO_MUTANTS):
	$(CARGO) install --locked --root $(MUTANTS_ROOT) cargo-mutants --version $(CARGO_MUTANTS_VERSION)

## mutants: mutation testing per file (see TESTING.md); one summary line
## per file, also in target/mutants/summary.txt.
mutants: $(CARGO_MUTANTS)
	@mkdir -p $(MUTANTS_OUT)
	@: > $(MUTANTS_OUT)/summary.txt
	@set -e; $(foreach f,$(MUTANTS_FILES),\
	  echo "== mutants: $(f): $(mutants_files_$(f)) with $(mutants_tests_$(f))"; \
	  PATH="$(abspath $(MUTANTS_ROOT))/bin:$$PATH" $(CARGO) mutants --no-shuffle \
	    $(foreach p,$(wildcard $(mutants_files_$(f))),--file $(p)) \
	    --timeout $(MUTANTS_TIMEOUT) --jobs $(MUTANTS_JOBS) $(MUTANTS_ARGS) \
	    $(foreach a,$(mutants_tests_$(f)),--cargo-arg=$(a)) \
	    --output $(MUTANTS_OUT)/$(f) || true; \
	  python3 scripts/mutants-summary.py $(f) $(MUTANTS_OUT)/$(f)/mutants.out \
	    mutants-equivalent.txt | tee -a $(MUTANTS_OUT)/summary.txt;)
	@echo "== summary (target/mutants/summary.txt)"; cat $(MUTANTS_OUT)/summary.txt
