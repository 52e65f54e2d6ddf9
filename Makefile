# Every target bootstraps first (idempotent: it installs only what is missing).
.PHONY: test lint run demo down bootstrap

bootstrap:
	scripts/bootstrap.sh

test: bootstrap
	scripts/check.sh

lint: bootstrap
	.venv/bin/ruff check
	.venv/bin/ruff format --check
	.venv/bin/mypy swarmlet

run: bootstrap
	scripts/run-lab.sh

demo: bootstrap
	scripts/demo.sh

down:
	.venv/bin/swarmlet lab down
