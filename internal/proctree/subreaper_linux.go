package proctree

import (
	"sync"
	"syscall"
)

var subreaper struct {
	once sync.Once
	err  error
}

// becomeSubreaper makes this process adopt its orphaned descendants, once.
func becomeSubreaper() error {
	subreaper.once.Do(func() {
		const prSetChildSubreaper = 36 // PR_SET_CHILD_SUBREAPER, <linux/prctl.h>
		if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
			subreaper.err = errno
		}
	})
	return subreaper.err
}
