package supervisor

import (
	"go.uber.org/zap"

	"github.com/supervise/supervise/watch/heartbeat"
)

// scheduleSelfBeat (re)arms the supervisor's own heartbeat (SPEC §5); now
// writes one at once. The loop writes the file itself, so a wedged loop
// stops beating: heartbeat.Writer's Run would keep beating on a goroutine
// of its own, so the loop calls Beat on its own timer instead.
func (s *Supervisor) scheduleSelfBeat(now bool) {
	if s.beatTimer != nil {
		s.beatTimer.Stop()
		s.beatTimer = nil
	}
	sv := s.cfg.Supervisor
	if sv.HeartbeatFile == "" || sv.HeartbeatInterval <= 0 {
		s.beatWriter = nil
		return
	}
	if s.beatWriter == nil || s.beatWriter.Path() != sv.HeartbeatFile {
		s.beatWriter = heartbeat.NewWriter(sv.HeartbeatFile, sv.HeartbeatInterval,
			heartbeat.WithClock(s.clk),
			heartbeat.WithMetadata(s.beatMetadata),
			heartbeat.WithOnError(func(err error) {
				s.log.Warn("writing the supervisor heartbeat", zap.String("file", sv.HeartbeatFile), zap.Error(err))
			}))
	}
	if now {
		s.writeSelfBeat()
	}
	s.beatTimer = s.clk.AfterFunc(sv.HeartbeatInterval, func() { s.box.push(selfBeat{}) })
}

func (s *Supervisor) writeSelfBeat() {
	if s.beatWriter != nil {
		_ = s.beatWriter.Beat() // a failure is logged by the writer's hook
	}
}

// beatMetadata is the metadata of the supervisor's heartbeat: the version,
// the number of programs and the count of programs per state.
func (s *Supervisor) beatMetadata() map[string]any {
	counts := map[string]any{}
	for st, n := range s.stateCounts() {
		counts[st] = n
	}
	return map[string]any{
		"version":  s.opts.Version,
		"programs": len(s.progs),
		"states":   counts,
		"shutting": s.shutting,
	}
}
