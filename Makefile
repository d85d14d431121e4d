# One Makefile of entry points, used by developers and CI alike.
#   make run     set up and serve the bundled example app on http://127.0.0.1:8000
#   make test    set up and run the whole test suite (what .ci/run calls)
#   make bench   the benchmark pipeline (bench/README.md)

SHELL := /bin/bash
PYENV_ROOT ?= $(HOME)/.pyenv
# Python 3.11 and the newest Python present are both tested.
PY311 := $(firstword $(wildcard $(PYENV_ROOT)/versions/3.11*/bin/python3) $(shell command -v python3.11))
# The system python3 is only the fallback: it goes first, so the newest pyenv one is the last word.
PYNEW := $(lastword $(shell command -v python3) $(shell ls -d $(PYENV_ROOT)/versions/3.1[0-9]*/bin/python3 2>/dev/null | sort -V))
PY ?= $(PY311)
TEST_DEPS := pytest requests flask django falcon
JOBS ?= 2

.PHONY: run test test-cpp test-py test-asan fuzz-smoke format format-check deps venvs bench clean format

# Installs libuv (Debian/Ubuntu) when pkg-config cannot find it.
deps:
	@pkg-config --exists 'libuv >= 1.40' 2>/dev/null || { \
	  echo "libuv not found: installing libuv1-dev with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libuv1-dev pkg-config; }

.venv-%/ok: pyproject.toml CMakeLists.txt $(shell find src python -type f) | deps
	@py=$(if $(filter new,$*),$(PYNEW),$(PY311)); \
	[ -x .venv-$*/bin/python ] || $$py -m venv .venv-$*; \
	.venv-$*/bin/python -m pip install -q --upgrade pip && \
	.venv-$*/bin/python -m pip install -q $(TEST_DEPS) && \
	.venv-$*/bin/python -m pip install -q . && touch $@

venvs: .venv-311/ok .venv-new/ok

run: .venv-311/ok
	.venv-311/bin/fulmen --bind 127.0.0.1:8000 examples/hello.py

# C++ unit tests and fuzz-corpus replay, built with ASan and UBSan.
build/cpp-tests/ok: deps $(shell find src tests/cpp fuzz -type f) CMakeLists.txt
	cmake -S . -B build/cpp-tests -DFULMEN_BUILD_MODULE=OFF -DFULMEN_BUILD_TESTS=ON -DFULMEN_SANITIZE=ON \
	  -DFULMEN_WERROR=ON -DCMAKE_BUILD_TYPE=Debug > /dev/null
	cmake --build build/cpp-tests -j $(JOBS)
	touch $@

test-cpp: build/cpp-tests/ok
	cd build/cpp-tests && ctest --output-on-failure

test-py: venvs
	@.venv-311/bin/python -c 'import sys; print("pytest on Python", sys.version.split()[0])'
	.venv-311/bin/python -m pytest -q tests
	@.venv-new/bin/python -c 'import sys; print("pytest on Python", sys.version.split()[0])'
	.venv-new/bin/python -m pytest -q tests

# The extension built with ASan+UBSan, and the end-to-end suite run against it. The
# sanitizer runtime is preloaded into the server processes only (tests/conftest.py); a
# sanitizer report or crash in a server log fails the test that caused it.
ASAN_RT := $(shell gcc -print-file-name=libasan.so)
.venv-asan/ok: pyproject.toml CMakeLists.txt $(shell find src python -type f) | deps
	[ -x .venv-asan/bin/python ] || $(PY311) -m venv .venv-asan
	.venv-asan/bin/python -m pip install -q --upgrade pip && \
	.venv-asan/bin/python -m pip install -q $(TEST_DEPS) && \
	.venv-asan/bin/python -m pip install -q . -C cmake.define.FULMEN_SANITIZE=ON \
	  -C cmake.build-type=RelWithDebInfo -C build-dir=build/asan && touch $@

test-asan: .venv-asan/ok
	FULMEN_SANITIZER_PRELOAD=$(ASAN_RT) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  .venv-asan/bin/python -m pytest -q -p no:cacheprovider tests --ignore=tests/test_cli.py

# A short libFuzzer run per target (clang), seeded with the committed corpora.
FUZZ_SECONDS ?= 20
fuzz-smoke: deps
	CXX=clang++ cmake -S . -B build/fuzz -DFULMEN_BUILD_MODULE=OFF -DFULMEN_FUZZ=ON -DFULMEN_SANITIZE=ON \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
	cmake --build build/fuzz -j $(JOBS)
	for t in parser chunked connection static_path; do \
	  rm -rf build/fuzz/new-$$t && mkdir -p build/fuzz/new-$$t && \
	  build/fuzz/fuzz_$$t -dict=fuzz/http.dict -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=build/fuzz/ build/fuzz/new-$$t fuzz/corpus/$$t 2>&1 | grep -E "^(stat::number_of_executed_units|Done)|ERROR|SUMMARY" \
	    || exit 1; \
	  ! ls build/fuzz/crash-* build/fuzz/leak-* build/fuzz/timeout-* 2>/dev/null | grep -q . || exit 1; \
	done

test: format-check test-cpp fuzz-smoke test-py test-asan

bench: .venv-311/ok
	.venv-311/bin/python bench/run.py

CXX_SOURCES = $$(find src tests/cpp fuzz -name '*.cc' -o -name '*.h')
format:
	clang-format -i $(CXX_SOURCES)

# The C++ follows the repository's .clang-format.
format-check:
	clang-format --dry-run --Werror $(CXX_SOURCES)

clean:
	rm -rf build .venv-311 .venv-new .venv-asan
