//go:build unix && !linux

package guest

// mapNoReserve is 0: macOS and the BSDs commit anonymous pages when touched anyway.
const mapNoReserve = 0
