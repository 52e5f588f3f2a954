package supervisor

import (
	"github.com/supervise/supervise/control"
	"github.com/supervise/supervise/watch/heartbeat"
)

// fillMetadata reads the metadata of the heartbeat files of rows, off the
// event loop: a program controls its file and could make a read block. A
// file that holds no heartbeat JSON (a touched one) has no metadata.
func fillMetadata(rows []control.ProgramStatus, files map[int]string) {
	for i, path := range files {
		if i < len(rows) {
			if st, err := heartbeat.ReadNoFollow(path); err == nil {
				rows[i].Heartbeat.Metadata = st.Metadata
			}
		}
	}
}
