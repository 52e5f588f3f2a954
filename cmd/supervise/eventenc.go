package main

import (
	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
)

// programFirst wraps the console encoder of the supervisor's own entries
// so that an entry about a program leads with the program's name (SPEC
// §14): `TIME INFO web started {"pid": 4123}` rather than a trailing
// {"program": "web"}. The program field, added by a logger's With or by the
// call, becomes the entry's logger name, which the console encoder writes
// after the level; every other field stays structured as it was.
type programFirst struct {
	zapcore.Encoder
	program string
}

// programKey is the field that names the program of an entry.
const programKey = "program"

// AddString keeps the program field aside.
func (e *programFirst) AddString(key, value string) {
	if key == programKey {
		e.program = value
		return
	}
	e.Encoder.AddString(key, value)
}

// Clone copies the encoder with the program it has kept.
func (e *programFirst) Clone() zapcore.Encoder {
	return &programFirst{Encoder: e.Encoder.Clone(), program: e.program}
}

// EncodeEntry writes ent led by its program.
func (e *programFirst) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	program := e.program
	for i, f := range fields {
		if f.Key == programKey && f.Type == zapcore.StringType {
			program = f.String
			fields = append(fields[:i:i], fields[i+1:]...)
			break
		}
	}
	if program != "" {
		ent.LoggerName = program
	}
	return e.Encoder.EncodeEntry(ent, fields)
}
