# Two commands for a fresh machine: `make run` and `make test` (see README.md).
# Pass arguments with ARGS, e.g. make test ARGS="-k diamond -x".
SHELL := /bin/bash
ARGS ?=

.PHONY: help run test bench lint migrate clean

help:
	@echo "make run      set up this machine, then run web + worker + beat + Flower (Ctrl-C stops)"
	@echo "make test     set up this machine, then ruff + pytest   (ARGS=... go to pytest)"
	@echo "make bench    set up this machine, then bench/run.py"
	@echo "make lint     ruff check ."
	@echo "make migrate  set up this machine and apply migrations"
	@echo "make clean    remove caches, collected static files and test logs (keeps .venv)"

run:
	@bash scripts/run.sh

test:
	@bash scripts/test.sh $(ARGS)

bench:
	@bash scripts/bootstrap.sh
	@if [ -f bench/run.py ]; then .venv/bin/python bench/run.py $(ARGS); \
	else echo "bench: bench/run.py does not exist yet; nothing to run"; fi

lint:
	@bash scripts/bootstrap.sh --venv-only
	.venv/bin/ruff check .

migrate:
	@bash scripts/bootstrap.sh

clean:
	rm -rf staticfiles .pytest_cache .ruff_cache .run/test-logs bench/out
	find . -path ./.venv -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
