# Two commands do all the set-up on a fresh clone: `make demo` and `make test`.
# Both create .venv with the Python below and install what they need into it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_ADDR ?= 127.0.0.1:8000
DEMO_S3_PORT ?= 9000
CHROMIUM ?= /usr/bin/chromium

.PHONY: demo demo-s3 browser-deps screenshots test test-peer lint bench dist-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## demo: set up and run the event site on http://$(DEMO_ADDR)/ (SQLite, files on the local disk)
## Like a real site it sets KEYED_STORAGE_BASE_URL (check W001), so links made outside a request work.
demo: export KEYED_STORAGE_BASE_URL ?= http://$(DEMO_ADDR)
demo: $(STAMP)
	cd testproject && ../$(PY) manage.py migrate --noinput
	cd testproject && ../$(PY) manage.py demo_data
	cd testproject && ../$(PY) manage.py runserver $(DEMO_ADDR)

## demo-s3: the same site with its files in S3: a moto server on 127.0.0.1:$(DEMO_S3_PORT),
## chosen by environment variables alone (no setting or code changes). moto keeps its data in
## memory, so each run starts from a fresh bucket and a fresh database in .demo/.
demo-s3: $(STAMP)
	mkdir -p .demo && rm -f .demo/s3.sqlite3
	$(VENV)/bin/moto_server -H 127.0.0.1 -p $(DEMO_S3_PORT) >.demo/moto.log 2>&1 & moto=$$!; \
	trap 'kill $$moto' EXIT INT TERM; \
	export BUCKET_NAME=keyed-storage-demo AWS_KEY=demo-key AWS_SECRET=demo-secret \
		AWS_ENDPOINT_URL_S3=http://127.0.0.1:$(DEMO_S3_PORT) DEMO_DB=$(CURDIR)/.demo/s3.sqlite3; \
	cd testproject && ../$(PY) manage.py demo_bucket && \
	../$(PY) manage.py migrate --noinput && \
	../$(PY) manage.py demo_data && \
	../$(PY) manage.py runserver $(DEMO_ADDR)

## browser-deps: Debian's Chromium for the browser tests (Playwright's own download cannot work here)
browser-deps:
	@test -x $(CHROMIUM) || { \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }
	@$(CHROMIUM) --version

## screenshots: with the demo running (make demo), retake the README's pictures in docs/
screenshots: $(STAMP)
	$(PY) docs/screenshots.py http://$(DEMO_ADDR)

## test: lint and type-check, then the whole test suite (starts its own S3 server on 127.0.0.1; installs
## Debian's Chromium for the browser tests if it is missing), then the peer tests
test: $(STAMP) browser-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest
	$(PEER_TESTS)

## test-peer: Django's own storage, FileField and ImageField tests run on KeyedStorage, in a
## pytest process with their own settings. The first run downloads the installed Django's
## sdist with pip and keeps its tests/ in build/django-tests/<version>/.
PEER_TESTS = $(VENV)/bin/pytest tests/peer --ds=tests.peer.settings
test-peer: $(STAMP)
	$(PEER_TESTS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## typecheck: mypy --strict on keyed_storage/ (configured in pyproject.toml: django-stubs, boto3-stubs)
.PHONY: typecheck
typecheck: $(STAMP)
	$(VENV)/bin/mypy

## bench: keyed_storage against django-storages, boto3 and the floor, one table (not pass/fail)
bench: $(STAMP)
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

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
	rm -rf $(VENV) dist build *.egg-info testproject/db.sqlite3 testproject/media .demo test-artifacts
