package supervisor

import (
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// progLogger logs entries about one program: the supervisor's logger with
// the program's name as the first field. It adds the field per entry, only
// when the entry is enabled, rather than keeping a zap.Logger.With per
// program, which holds an encoder of its own (about 1.3 KiB each, a megabyte
// and more for a thousand idle programs).
type progLogger struct {
	l    *zap.Logger
	name string
}

func (pl progLogger) write(lvl zapcore.Level, msg string, fields []zap.Field) {
	if ce := pl.l.Check(lvl, msg); ce != nil {
		ce.Write(append([]zap.Field{zap.String("program", pl.name)}, fields...)...)
	}
}

// Debug logs at debug level.
func (pl progLogger) Debug(msg string, fields ...zap.Field) { pl.write(zap.DebugLevel, msg, fields) }

// Info logs at info level.
func (pl progLogger) Info(msg string, fields ...zap.Field) { pl.write(zap.InfoLevel, msg, fields) }

// Warn logs at warn level.
func (pl progLogger) Warn(msg string, fields ...zap.Field) { pl.write(zap.WarnLevel, msg, fields) }

// Error logs at error level.
func (pl progLogger) Error(msg string, fields ...zap.Field) { pl.write(zap.ErrorLevel, msg, fields) }

// With returns a logger with the program's name and fields, for a series
// of entries.
func (pl progLogger) With(fields ...zap.Field) *zap.Logger {
	return pl.l.With(append([]zap.Field{zap.String("program", pl.name)}, fields...)...)
}
