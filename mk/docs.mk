# The documents: docs/design.md (the contract), SECURITY.md (the threat
# model and its promise-to-test map) and the READMEs stay true to the code.
#
# test-docs runs scripts/check-design.sh: every reason code, error code,
# metric, event kind, state and verdict the code defines is a row of its
# table in docs/design.md (and every row names one the code defines); every
# test the documents cite exists; no tracked file refers to an issue
# tracker that is not in the repository. It needs only bash, python3 and
# git, and takes about a second.

TEST_LEGS += test-docs

.PHONY: test-docs

## test-docs: docs/design.md names every code, metric and event of the code;
## cited tests exist; no reference to an outside issue tracker.
test-docs:
	bash scripts/check-design.sh
