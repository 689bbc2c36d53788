package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// checkPIDFile checks that tableflip will be able to write the PID file at
// path, the way it writes it (upgrader.go's writePIDFile): a temporary file
// named after it in the same directory, renamed over it. It says what is
// wrong naming path, not the temporary file. No path, no PID file: nil.
func checkPIDFile(path string) error {
	if path == "" {
		return nil
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("-pid-file %s: is a directory", path)
	}
	// "." for a bare name: tableflip's initial working directory, this one.
	dir, name := filepath.Dir(path), filepath.Base(path)
	f, err := os.CreateTemp(dir, name)
	if err != nil {
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			err = pathErr.Err // "no such file or directory", "permission denied"
		}
		return fmt.Errorf("-pid-file %s: cannot create a file in %s: %w", path, dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// readyError is Ready's error, said about the PID file the user named when
// that is what failed: tableflip's own error names its temporary file.
func readyError(err error, pidFile string) error {
	if problem := checkPIDFile(pidFile); problem != nil {
		return problem
	}
	return err
}
