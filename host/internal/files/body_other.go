//go:build !linux

package files

// Without openat2, a response body's file is opened through os.Root (openBodyRoot).

func openDirFD(string) int { return -1 }

func closeDirFD(int) {}

func (mt *Mount) openBody(name, p string) (BodyFile, error) { return mt.openBodyRoot(name, p) }
