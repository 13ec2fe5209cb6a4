#!/usr/bin/env bash
# Tests the C ABI: builds the library (debug), checks the crate (fmt, clippy, Rust tests),
# regenerates include/nanu.h with the pinned cbindgen and fails on any difference, then
# compiles the C programs in examples/c with -Wall -Wextra -Werror and runs them under
# AddressSanitizer + UBSan and valgrind, runs the C conformance runner over
# tests/scenarios, and the Go module's tests.
#
# Installs what it needs (valgrind, Go, cbindgen 0.29.4 into target/tools) and is safe to run
# again. Ends with "c: N passed, M failed"; exits non-zero when anything failed.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

CBINDGEN_VERSION=0.29.4
target="${CARGO_TARGET_DIR:-$root/target}"
lib="$target/debug"
build="$target/c-tests"
tools="$target/tools"

passed=0
failed=0
failures=()

# Runs one check: "check NAME COMMAND...". Output goes to $build/NAME.log and is shown on
# failure.
check() {
    local name="$1"
    shift
    local log="$build/$name.log"
    local start=$SECONDS
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1))
        echo "ok   $name ($((SECONDS - start)) s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "FAIL $name ($((SECONDS - start)) s); its output:"
        tail -n 60 "$log" | sed 's/^/    /'
    fi
}

# Stops at once: nothing after this step can run.
die() {
    echo "test-c: $*" >&2
    echo "c: $passed passed, $((failed + 1)) failed"
    exit 1
}

apt_install() {
    if [ "$(id -u)" != 0 ]; then
        die "missing $*; install it (apt-get install -y $*) or run as root"
    fi
    if [ -z "${apt_updated:-}" ]; then
        apt-get update -qq >/dev/null || die "apt-get update failed"
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null ||
        die "apt-get install $* failed"
}

mkdir -p "$build" "$tools"

# ---- tools -----------------------------------------------------------------------------

command -v cc >/dev/null || apt_install build-essential
command -v valgrind >/dev/null || apt_install valgrind
if ! command -v go >/dev/null; then
    if [ -x /usr/local/go/bin/go ]; then
        export PATH="$PATH:/usr/local/go/bin"
    else
        apt_install golang-go
    fi
fi
if ! "$tools/bin/cbindgen" --version 2>/dev/null | grep -qx "cbindgen $CBINDGEN_VERSION"; then
    echo "installing cbindgen $CBINDGEN_VERSION into $tools"
    cargo install --quiet --locked --version "=$CBINDGEN_VERSION" --root "$tools" cbindgen ||
        die "cannot install cbindgen $CBINDGEN_VERSION"
fi

# ---- the library and its crate ---------------------------------------------------------

cargo build --quiet -p nanu-ffi || die "cargo build -p nanu-ffi failed"
[ -f "$lib/libnanu.so" ] && [ -f "$lib/libnanu.a" ] || die "no libnanu.so / libnanu.a in $lib"

check rust-fmt cargo fmt -p nanu-ffi --check
check rust-clippy cargo clippy --quiet -p nanu-ffi --no-deps --all-targets -- -D warnings
check rust-tests cargo test --quiet -p nanu-ffi

header_is_current() {
    "$tools/bin/cbindgen" --quiet --config bindings/cbindgen.toml --crate nanu-ffi \
        --output "$build/nanu.h" bindings &&
        diff -u include/nanu.h "$build/nanu.h"
}
check header-is-current header_is_current

# ---- C programs ------------------------------------------------------------------------

cflags=(-std=c11 -Wall -Wextra -Werror -g -Iinclude)
sanitize=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
link_shared=(-L"$lib" -lnanu -Wl,-rpath,"$lib")
# A Rust staticlib needs the system libraries the standard library uses.
link_static=("$lib/libnanu.a" -lpthread -ldl -lm -lrt)
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

compile() {
    cc "${cflags[@]}" "$@"
}
check compile-example-asan compile "${sanitize[@]}" examples/c/example.c "${link_shared[@]}" \
    -o "$build/example-asan"
check compile-example compile examples/c/example.c "${link_shared[@]}" -o "$build/example"
check compile-example-static compile examples/c/example.c "${link_static[@]}" \
    -o "$build/example-static"
check compile-threads-asan compile "${sanitize[@]}" -pthread examples/c/threads.c \
    "${link_shared[@]}" -o "$build/threads-asan"
check compile-scenarios-asan compile "${sanitize[@]}" examples/c/scenarios.c examples/c/json.c \
    "${link_shared[@]}" -o "$build/scenarios-asan"
check compile-scenarios compile examples/c/scenarios.c examples/c/json.c "${link_shared[@]}" \
    -o "$build/scenarios"

valgrind_run() {
    valgrind --error-exitcode=1 --leak-check=full --quiet \
        --suppressions=examples/c/valgrind.supp "$@"
}
check example-asan "$build/example-asan"
check example-valgrind valgrind_run "$build/example"
check example-static "$build/example-static"
check threads-asan "$build/threads-asan"
check scenarios-asan "$build/scenarios-asan" tests/scenarios
check scenarios-valgrind valgrind_run "$build/scenarios" tests/scenarios

# The runner must fail every scenario in examples/c/must-fail, and refuse an empty folder.
runner_fails_bad_scenarios() {
    local count out
    count=$(find examples/c/must-fail -name '*.json' | wc -l)
    [ "$count" -gt 0 ] || return 1
    out=$("$build/scenarios-asan" examples/c/must-fail) && return 1
    echo "$out"
    echo "$out" | grep -qx "scenarios: 0 passed, $count failed"
}
runner_refuses_nothing() {
    local empty
    empty=$(mktemp -d)
    if "$build/scenarios-asan" "$empty"; then
        rmdir "$empty"
        return 1
    fi
    rmdir "$empty"
}
check scenarios-runner-fails-bad-ones runner_fails_bad_scenarios
check scenarios-runner-refuses-nothing runner_refuses_nothing

# ---- Go --------------------------------------------------------------------------------

go_test() {
    cd examples/go &&
        CGO_ENABLED=1 GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod \
            CGO_LDFLAGS="-L$lib -Wl,-rpath,$lib" go vet ./... &&
        CGO_ENABLED=1 GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod \
            CGO_LDFLAGS="-L$lib -Wl,-rpath,$lib" go test -count=1 -v ./...
}
go_fmt() {
    [ -z "$(gofmt -l examples/go)" ] || { gofmt -l examples/go; return 1; }
}
check go-fmt go_fmt
check go-test go_test

if [ "$failed" -gt 0 ]; then
    echo "failed: ${failures[*]}"
fi
echo "c: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
