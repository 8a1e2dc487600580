module github.com/wasmloop/wasmloop

go 1.25.0

require (
	github.com/gobwas/ws v1.4.0
	github.com/tetratelabs/wazero v1.12.0
	golang.org/x/mod v0.40.0
	golang.org/x/sync v0.22.0
	golang.org/x/sys v0.47.0
)

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/gobwas/pool v0.2.1 // indirect
)
