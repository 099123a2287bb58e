.PHONY: check demo setup bench
check:  ## lint, type-check and run all tests (what CI runs)
	./scripts/check
setup:  ## create .venv and install everything
	./scripts/setup
demo:   ## native stack + a sample call
	./scripts/demo
