//go:build !wasip1

package abi

import "embed"

// Source holds this package's Go files, so that the wasmloop command can give a guest built
// outside this repository the exact SDK it was built with (see package guestsdk, which
// assembles the module; tests and this file are dropped there). Guests never carry it: the
// file builds only for the host.
//
//go:embed *.go
var Source embed.FS
