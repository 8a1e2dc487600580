package host

// OnForgottenRelease sets a function to run when the collector has released an App dropped
// without Close.
func OnForgottenRelease(f func()) { forgottenHook = f }
