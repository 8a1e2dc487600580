package abi

// Files (ABI 1.5): the host's own async functions, called with host_call_async like the
// embedder's and answered with wasmloop_on_host_result (ABI.md §9). Every path is absolute in
// the guest's view ("/www/index.html") and must lie in a directory the host granted
// (--dir, host.Config.Dirs). Integers are little-endian.
const (
	// FnReadFile: in = path; result = the file's bytes (at most MaxReadFile).
	FnReadFile = "wasmloop:fs.readFile"
	// FnRead: in = offset u64, length u32, path; result = up to length bytes from offset
	// (fewer at the end of the file; length at most MaxRead).
	FnRead = "wasmloop:fs.read"
	// FnWriteFile: in = path length u32, path, data; creates or truncates the file.
	FnWriteFile = "wasmloop:fs.writeFile"
	// FnAppendFile: in = path length u32, path, data; creates the file or appends to it.
	FnAppendFile = "wasmloop:fs.appendFile"
	// FnStat: in = path; result = a StatSize-byte record (see Stat* offsets). Symbolic links
	// inside the grant are followed.
	FnStat = "wasmloop:fs.stat"
	// FnReadDir: in = path; result = entries, each kind u8 (Kind*), name length u16, name;
	// sorted by name.
	FnReadDir = "wasmloop:fs.readDir"
	// FnMkdir: in = flags u8 (FlagRecursive: make parents, and no error if it exists), path.
	FnMkdir = "wasmloop:fs.mkdir"
	// FnRemove: in = flags u8 (FlagRecursive: a directory and everything in it), path.
	FnRemove = "wasmloop:fs.remove"
	// FnRename: in = old path length u32, old path, new path; both in the same grant.
	FnRename = "wasmloop:fs.rename"
	// FnStatForBody (since 1.8; sync, host_call only): in = request handle u64, path; result
	// = a StatSize-byte record, as FnStat's. A regular file is also held open for that
	// request's body_file of the same path: the bytes sent are those of the file described,
	// even if the path is renamed over meanwhile.
	FnStatForBody = "wasmloop:fs.statForBody"
)

// FilesPrefix begins the name of every host function of the host's own.
const FilesPrefix = "wasmloop:"

// Limits of one file operation's result: a whole file read at once, and one range.
const (
	MaxReadFile = 64 << 20
	MaxRead     = 16 << 20
)

// FlagRecursive is the flags bit of FnMkdir and FnRemove.
const FlagRecursive = 1

// The stat record: size u64, modification time i64 (Unix nanoseconds), mode u32 (the
// permission bits), kind u8.
const (
	StatSize    = 21
	StatSizeAt  = 0
	StatMtimeAt = 8
	StatModeAt  = 16
	StatKindAt  = 20
)

// Kinds of file in a stat record and a directory entry.
const (
	KindFile    = 0
	KindDir     = 1
	KindSymlink = 2 // a directory entry only: stat follows links
	KindOther   = 3
)

// A failed file operation's result is its error: a code, a space, and a message for people
// ("ENOENT open /www/x: no such file"). The codes:
const (
	FileENOENT    = "ENOENT"    // no such file or directory
	FileEEXIST    = "EEXIST"    // it exists already
	FileEACCES    = "EACCES"    // not granted, or the grant is read-only
	FileENOTDIR   = "ENOTDIR"   // a path element is not a directory
	FileEISDIR    = "EISDIR"    // a directory where a file was wanted
	FileENOTEMPTY = "ENOTEMPTY" // the directory is not empty
	FileEINVAL    = "EINVAL"    // a malformed request or path
	FileEFBIG     = "EFBIG"     // past MaxReadFile or MaxRead
	FileEXDEV     = "EXDEV"     // a rename between two grants
	FileELOOP     = "ELOOP"     // too many symbolic links (a loop) on the way
	FileEIO       = "EIO"       // anything else the system reported
)
