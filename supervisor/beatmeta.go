package supervisor

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/watch/heartbeat"
)

// fillMetadata reads the metadata of the heartbeat files of rows, off the
// event loop: a program controls its file and could make a read block.
func fillMetadata(rows []control.ProgramStatus, files map[int]string) {
	for i, path := range files {
		if i < len(rows) {
			if meta, err := readBeatMetadata(path); err == nil {
				rows[i].Heartbeat.Metadata = meta
			}
		}
	}
}

// readBeatMetadata reads the heartbeat JSON of path without following a
// symbolic link and without blocking on a FIFO or device: the type is
// checked on the open descriptor and the size is bounded. A file that
// holds no heartbeat JSON (a touched file) has no metadata.
func readBeatMetadata(path string) (map[string]any, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("heartbeat file %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("heartbeat file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("heartbeat file %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	if fi.Size() == 0 {
		return nil, nil
	}
	data, err := io.ReadAll(io.LimitReader(f, heartbeat.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("heartbeat file %s: %w", path, err)
	}
	if len(data) > heartbeat.MaxSize {
		return nil, fmt.Errorf("heartbeat file %s: larger than %d bytes", path, heartbeat.MaxSize)
	}
	st, err := heartbeat.Parse(data)
	if err != nil {
		return nil, err
	}
	return st.Metadata, nil
}
