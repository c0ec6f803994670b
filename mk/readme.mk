# The READMEs' code blocks (scripts/readme-blocks.py): every fenced block of
# every README.md is built and run against a real fleet of sidecars laid
# down by firma-testkit, or says by its info string why it is not run
# (text, a shell block for a person, a loop that runs until a signal).
# Python blocks run with .venv's package, so this leg follows test-python.

TEST_LEGS += test-readme

.PHONY: test-readme

## test-readme: build and run every README code block against a real fleet
## (C, Go, Rust, Python, `sh run`); the harness's own self-test first.
test-readme: build-rust build-testkit go-header-check
	python3 scripts/readme-blocks.py --self-test
	python3 scripts/readme-blocks.py
