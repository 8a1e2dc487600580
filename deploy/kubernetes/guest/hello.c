// The module of deploy/kubernetes/configmap.yaml: Node's hello world as a C guest written
// straight against the ABI (a copy of host/internal/loop/testdata/chello/hello.c that listens
// on every address, as a pod must: the samples listen on 127.0.0.1), small enough for a
// ConfigMap (at most 1 MiB; a Go guest is about 3 MB: bake it into the image instead).
// Build, and write the ConfigMap (manifests_test.go checks the module it carries):
//   clang --target=wasm32-wasi -mexec-model=reactor -O2 -mbulk-memory -Wl,--strip-all -o app.wasm hello.c
//   kubectl create configmap wasmloop-app --from-file=app.wasm --dry-run=client -o yaml
#include <stdint.h>
#include <stdlib.h>

#define IMPORT(name) __attribute__((import_module("wasmloop_v1"), import_name(name)))
#define EXPORT(name) __attribute__((export_name(name)))

IMPORT("inbox") int32_t wl_inbox(void *ptr, uint32_t len);
IMPORT("listen") int64_t wl_listen(const char *addr, uint32_t addr_len, int32_t port, int32_t flags);
IMPORT("respond") int32_t wl_respond(int64_t req, int32_t status, const char *hdr, uint32_t hdr_len,
                                     const char *body, uint32_t body_len, int32_t flags);

static uint8_t inbox[65536];
static const char hdr[] = "Content-Type: text/plain\r\n";
static const char body[] = "Hello World\n";

EXPORT("wasmloop_abi_v1") int32_t abi_version(void) { return 2; }

EXPORT("wasmloop_on_start") int32_t on_start(void) {
	if (wl_inbox(inbox, sizeof inbox) < 0)
		return 1;
	const char *p = getenv("PORT");
	if (wl_listen("0.0.0.0", 7, p ? atoi(p) : 1337, 0) < 0)
		return 1;
	return 0;
}

EXPORT("wasmloop_on_request") int32_t on_request(int64_t listener, int64_t req, int32_t len) {
	return wl_respond(req, 200, hdr, sizeof hdr - 1, body, sizeof body - 1, 1) < 0;
}
