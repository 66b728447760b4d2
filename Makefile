# Thin wrapper over CMake for the README's commands.
#   make        build build/orrery
#   make run    install what is missing, build, start on 127.0.0.1:8080
#   make test   install what is missing, build, run every test (then again under ASan+UBSan,
#               and the cross-worker ones under TSan)
#   make install  the server, the gear SDK and the gears echo and chat under PREFIX
#               (default /usr/local; DESTDIR is honoured)
#   make soak   hostile cases at full size against the ASan build (not part of make test)
#   make fuzz-long  every fuzz target for 10M executions or 30 minutes
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
# The tests whose servers pass messages between worker threads: run again under TSan.
# (Criterion cannot start under TSan, Snaipe/Criterion#274: only integration tests run there.)
TSAN_TESTS ?= ^it/.*(registry|pools|push|lifecycle|chat|cluster|budget|reload|lua|deflate|park|tls)
# Not the [nodeflate] variants (which the pattern's "deflate" matches too): with deflate off a
# connection takes the cross-thread paths the plain runs of those suites already take under TSan;
# nor deflate_memory, which measures RSS (deflate.test.mjs has the cross-thread fan-out).
TSAN_EXCLUDE ?= \[nodeflate\]|deflate_memory
JOBS       ?= $(shell nproc)
PREFIX     ?= /usr/local
ARGS       ?=

.PHONY: all build install run test test-fast test-asan test-tsan check-layers format-check deps deps-test bench fuzz fuzz-long soak clean format

all: build

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

deps:
	@scripts/deps.sh

# Everything under PREFIX (DESTDIR, from the environment or the command line, is
# prepended as usual): bin/orrery, include/orrery/gear.h, lib/pkgconfig/orrery-gear.pc,
# lib/orrery/gears/{echo,chat}.so, etc/orrery/orrery.json, lib/systemd/system/orrery.service.
install: deps build
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

deps-test:
	@scripts/deps.sh test

run: deps build
	$(BUILD)/orrery $(ARGS)

# The layer rule, the format, every test, then the whole suite again under ASan+UBSan and
# the cross-thread tests under TSan.
test: deps-test check-layers format-check build
	cd $(BUILD) && ctest --output-on-failure -j 2
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory test-tsan

test-fast: check-layers build
	cd $(BUILD) && ctest --output-on-failure -j 2

# Includes between src/ directories follow docs/ARCHITECTURE.md's layers block, names its
# naming block, and no function in src/ is longer than 60 lines.
check-layers:
	@python3 scripts/layers.py
	@python3 scripts/naming.py
	@python3 scripts/funclen.py

test-asan:
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DORR_SANITIZE=address,undefined >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ORR_SANITIZED=1 ctest --output-on-failure -j 2

test-tsan:
	@cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DORR_SANITIZE=thread >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 ORR_SANITIZED=1 \
	  ctest --output-on-failure -j 2 -R '$(TSAN_TESTS)' -E '$(TSAN_EXCLUDE)'

bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory build
	bench/run.sh

fuzz:
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DORR_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)
	fuzz/run.sh build-fuzz

# Every fuzz target for 10 million executions or 30 minutes, whichever comes first.
fuzz-long:
	@$(MAKE) --no-print-directory fuzz FUZZ_RUNS=10000000 FUZZ_SECONDS=1800

# The hostile cases of issue 8 at full size against the ASan+UBSan build, RSS sampled.
soak: deps-test
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DORR_SANITIZE=address,undefined >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  /usr/bin/python3 tests/soak/soak.py --bin $(ASAN_BUILD)/orrery

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# Every tracked C file as .clang-format has it (make format mends them).
format-check:
	@clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h') || \
	  { echo "format-check: run 'make format'"; exit 1; }

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) build-fuzz
