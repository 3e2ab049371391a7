//go:build !linux

package falco

import (
	"fmt"
	"os"
	"path/filepath"
)

func datasync(f *os.File) error { return f.Sync() }

// lockDir only creates the lock file: no advisory locking off Linux.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	return f, nil
}
