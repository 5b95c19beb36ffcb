# Shortcuts; the scripts are the real thing (and work without make).
#   make run  ARGS='--port 8080'          scripts/serve.sh
#   make test ARGS='tests/unit -x'        scripts/test.sh (install, services, lint, types, tests)
#   make services SERVICES='redis'        scripts/services.sh
VENV := .venv
ARGS ?=
SERVICES ?=

.PHONY: run test check lint services

run:
	scripts/serve.sh $(ARGS)

test:
	scripts/test.sh $(ARGS)

check: test

lint:
	@test -x $(VENV)/bin/ruff -a -x $(VENV)/bin/mypy || \
		{ echo "no ruff/mypy in $(VENV): run 'make test' (scripts/test.sh) once first" >&2; exit 1; }
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy

services:
	scripts/services.sh $(SERVICES)
