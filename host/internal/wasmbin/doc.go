// Package wasmbin reads the WebAssembly binary format where the host must before wazero does.
//
// Check bounds every count and length a module declares by the bytes that would hold it,
// because wazero allocates by the declared count before it reads the entries: a module of a
// few dozen bytes could otherwise make the process allocate gigabytes, or die of it. Meter
// rewrites a module so that its code calls the host at regular intervals, which is what lets
// a call be stopped and the garbage collector stop a guest that loops. LimitTables gives a
// module's tables maximums within MaxTableElements, since they grow outside the memory limit.
//
// Both read only WebAssembly 2.0, the set the runtime accepts, and decode only what they must:
// wazero validates the module afterwards as it always would.
package wasmbin
