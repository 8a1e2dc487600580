//go:build race

package tests

// raceEnabled: the tests run with -race (as CI runs them), so TestMain also builds a wasmloop
// binary with -race for race_cli_test.go.
const raceEnabled = true
