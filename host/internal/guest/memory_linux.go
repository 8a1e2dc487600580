package guest

import "golang.org/x/sys/unix"

// mapNoReserve keeps Linux from reserving swap for the whole reservation.
const mapNoReserve = unix.MAP_NORESERVE
