# Two commands do all the set-up on a fresh clone: `make demo` and `make test`.
# Both create .venv with the Python below and install what they need into it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_ADDR ?= 127.0.0.1:8000

.PHONY: demo test lint dist-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## demo: set up and run the event site on http://$(DEMO_ADDR)/ (SQLite, files on the local disk)
demo: $(STAMP)
	cd testproject && ../$(PY) manage.py migrate --noinput
	cd testproject && ../$(PY) manage.py demo_data
	cd testproject && ../$(PY) manage.py runserver $(DEMO_ADDR)

## test: lint, then the whole test suite (starts its own S3 server on 127.0.0.1)
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## dist-check: build the sdist and wheel, install each into a clean venv and use it there
dist-check: $(STAMP)
	rm -rf dist build/dist-check
	$(PY) -m build --outdir dist . >/dev/null
	for artifact in dist/*.whl dist/*.tar.gz; do \
		rm -rf build/dist-check && $(PYTHON) -m venv build/dist-check && \
		build/dist-check/bin/python -m pip install --quiet "$$artifact" && \
		(cd build && dist-check/bin/python ../.ci/smoke_installed.py "$$artifact") || exit 1; \
	done

clean:
	rm -rf $(VENV) dist build *.egg-info testproject/db.sqlite3 testproject/media
