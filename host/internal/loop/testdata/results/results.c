// A C guest whose callbacks that concern no request return non-zero results, which the host
// must log by name (ABI.md §2): on_timer returns ECLOSED (-5), the other callbacks 7.
// Build: clang --target=wasm32-wasi -mexec-model=reactor -O2 -mbulk-memory
#include <stdint.h>

#define IMPORT(name) __attribute__((import_module("wasmloop_v1"), import_name(name)))
#define EXPORT(name) __attribute__((export_name(name)))

IMPORT("inbox") int32_t wl_inbox(void *ptr, uint32_t len);
IMPORT("timer_start") int64_t wl_timer_start(int64_t delay_ns, int64_t interval_ns);

static uint8_t inbox[4096];

EXPORT("wasmloop_abi_v1") int32_t abi_version(void) { return 2; }

EXPORT("wasmloop_on_start") int32_t on_start(void) {
	if (wl_inbox(inbox, sizeof inbox) < 0)
		return 1;
	return wl_timer_start(0, 0) < 0;
}

EXPORT("wasmloop_on_timer") int32_t on_timer(int64_t timer) { return -5; }
EXPORT("wasmloop_on_close") int32_t on_close(int64_t h, int32_t reason) { return 7; }
EXPORT("wasmloop_on_drain") int32_t on_drain(int64_t req) { return 7; }
