# The two quick-start commands are `make demo` and `make test`; each sets itself up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: demo test venv orthanc clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

venv: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"

# Debian's Orthanc with its DICOMweb plugin: the real third-party server the
# DICOMweb tests also run against. Installed only when missing (needs root).
orthanc:
	@command -v Orthanc >/dev/null 2>&1 || bash scripts/install-orthanc.sh

demo: venv
	$(BIN)/postdicom-flows demo

test: venv orthanc
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo-data .pytest_cache
