package supervisor

import (
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/supervise/supervise/watch/heartbeat"
)

// scheduleSelfBeat (re)arms the supervisor's own heartbeat; now writes one
// at once. The loop writes the file itself, so a wedged loop stops beating.
func (s *Supervisor) scheduleSelfBeat(now bool) {
	if s.beatTimer != nil {
		s.beatTimer.Stop()
		s.beatTimer = nil
	}
	sv := s.cfg.Supervisor
	if sv.HeartbeatFile == "" || sv.HeartbeatInterval <= 0 {
		return
	}
	if now {
		s.writeSelfBeat()
	}
	s.beatTimer = s.clk.AfterFunc(sv.HeartbeatInterval, func() { s.box.push(selfBeat{}) })
}

func (s *Supervisor) writeSelfBeat() {
	path := s.cfg.Supervisor.HeartbeatFile
	if path == "" {
		return
	}
	host, _ := os.Hostname()
	counts := map[string]any{}
	for st, n := range s.stateCounts() {
		counts[st] = n
	}
	meta := map[string]any{
		"version":  s.opts.Version,
		"programs": len(s.progs),
		"states":   counts,
		"shutting": s.shutting,
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		s.log.Warn("creating the heartbeat directory", zap.String("file", path), zap.Error(err))
		return
	}
	err := heartbeat.Write(path, heartbeat.State{Timestamp: s.clk.Now().UTC(), PID: os.Getpid(), Hostname: host, Metadata: meta})
	if err != nil {
		s.log.Warn("writing the supervisor heartbeat", zap.String("file", path), zap.Error(err))
	}
}
