package host

// OnForgottenRelease sets a function to run when the collector has released an App dropped
// without Close.
func OnForgottenRelease(f func()) { forgottenHook = f }

// FileResultsHeld says whether results of the file functions are held in the host's memory,
// read and not yet released (files.Mounts.Idle).
func FileResultsHeld(a *App) bool { return !a.res.dirs.Idle() }
