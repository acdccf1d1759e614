# gilvm — a thin wrapper around meson: set-up, demo, tests, benchmarks.
#   make demo    install what is missing, build, run the demo scripts
#   make test    install what is missing, build three ways (plain,
#                ASan+UBSan, TSan), run the whole suite in each, then
#                fuzz the marshaller's decoder for 20 s (libFuzzer)
#   make bench   run bench/run (figures, not tests)
#   make format  put every C file in the house style (.clang-format)
#   make conformance [LUA_TESTS=DIR]
#                the official Lua 5.4.4 test suite under gilvm, six ways
#                (tools/conformance.sh; DIR defaults to ../shared/lua-5.4.4-tests)

BUILDS := build build-asan build-tsan build-fuzz

.PHONY: all setup demo test bench conformance clean format

LUA_TESTS ?= $(firstword $(wildcard ../shared/lua-5.4.4-tests shared/lua-5.4.4-tests))

all: build/build.ninja
	ninja -C build

setup:
	@tools/setup.sh

build/build.ninja: | setup
	meson setup build

build-asan/build.ninja: | setup
	meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

build-tsan/build.ninja: | setup
	meson setup build-tsan -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debug

build-fuzz/build.ninja: | setup
	CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=disabled

demo: all
	@echo "== two CPU-bound threads under the GIL: no speedup"
	build/gilvm scripts/cpu_bound.lua 2
	@echo "== an I/O thread next to a CPU hog, 1 ms switch interval"
	build/gilvm -s 1ms scripts/convoy.lua
	@echo "== three 2 s downloads on three threads: about 2 s, not 6"
	build/gilvm scripts/io_bound.lua

test: $(addsuffix /build.ninja,$(BUILDS))
	@tools/run_tests.sh $(BUILDS)

bench: all
	bench/run

conformance: all
	@tools/conformance.sh $(LUA_TESTS)

format: | setup
	tools/check_format.sh --fix

clean:
	rm -rf $(BUILDS)
