// A C guest that checks, from inside wasmloop_on_close and wasmloop_on_ws_close, what the
// handle being closed answers (ABI.md: it goes stale after the call, so during it the host
// says ECLOSED, not EBADHANDLE). Any other answer traps, which the test sees as a replaced
// instance. GET /ws accepts a WebSocket; any other request is held, never answered.
// Build: clang --target=wasm32-wasi -mexec-model=reactor -O2 -mbulk-memory
#include <stdint.h>
#include <stdlib.h>

#define IMPORT(name) __attribute__((import_module("wasmloop_v1"), import_name(name)))
#define EXPORT(name) __attribute__((export_name(name)))

IMPORT("inbox") int32_t wl_inbox(void *ptr, uint32_t len);
IMPORT("listen") int64_t wl_listen(const char *addr, uint32_t addr_len, int32_t port, int32_t flags);
IMPORT("end") int32_t wl_end(int64_t req);
IMPORT("ws_accept") int64_t wl_ws_accept(int64_t req, const char *proto, uint32_t proto_len,
                                         const char *hdr, uint32_t hdr_len, int32_t flags);
IMPORT("ws_send") int32_t wl_ws_send(int64_t ws, const char *data, uint32_t len, int32_t flags);

#define ECLOSED (-5)

static uint8_t inbox[65536];

EXPORT("wasmloop_abi_v1") int32_t abi_version(void) { return 3; }

EXPORT("wasmloop_on_start") int32_t on_start(void) {
	if (wl_inbox(inbox, sizeof inbox) < 0)
		return 1;
	if (wl_listen("127.0.0.1", 9, 0, 0) < 0)
		return 1;
	return 0;
}

// The packed head (abi/head.go) has the method length at 8, the target length at 12, and
// method and target from 32: a target of exactly "/ws" is the WebSocket route.
EXPORT("wasmloop_on_request") int32_t on_request(int64_t listener, int64_t req, int32_t len) {
	(void)listener;
	(void)len;
	uint32_t mlen = inbox[8] | inbox[9] << 8;
	uint32_t tlen = inbox[12] | inbox[13] << 8 | inbox[14] << 16 | (uint32_t)inbox[15] << 24;
	const char *target = (const char *)inbox + 32 + mlen;
	if (tlen == 3 && target[0] == '/' && target[1] == 'w' && target[2] == 's')
		return wl_ws_accept(req, 0, 0, 0, 0, 0) < 0;
	return 0; // held
}

EXPORT("wasmloop_on_close") int32_t on_close(int64_t req, int32_t reason) {
	(void)reason;
	int32_t rc = wl_end(req);
	if (rc != 0 && rc != ECLOSED)
		__builtin_trap();
	return 0;
}

EXPORT("wasmloop_on_ws_message") int32_t on_ws_message(int64_t ws, int32_t len, int32_t flags) {
	(void)ws;
	(void)len;
	(void)flags;
	return 0;
}

EXPORT("wasmloop_on_ws_close") int32_t on_ws_close(int64_t ws, int32_t code, int32_t len) {
	(void)code;
	(void)len;
	if (wl_ws_send(ws, "late", 4, 0) != ECLOSED)
		__builtin_trap();
	return 0;
}
