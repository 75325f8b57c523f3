//go:build unix

package main

import (
	"io/fs"
	"os"
	"syscall"
)

// keepOwner gives f the owner and group of the file it replaces, so that an
// edit made as root leaves the file readable by the server's user. It is
// best effort: without the right to chown, the file is written anyway.
func keepOwner(f *os.File, orig fs.FileInfo) {
	if st, ok := orig.Sys().(*syscall.Stat_t); ok {
		_ = f.Chown(int(st.Uid), int(st.Gid))
	}
}
