module github.com/wasmloop/wasmloop/deploy

go 1.26.0
