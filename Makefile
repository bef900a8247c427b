# The few commands people run; each sets up .venv itself.
.PHONY: run test lint format
run:
	scripts/run
test:
	scripts/test
lint:
	.venv/bin/python -m pip install --quiet "ruff==0.17.6" && .venv/bin/ruff check . && .venv/bin/ruff format --check .
format:
	.venv/bin/ruff format .
