package control

import (
	"fmt"
	"os"
	"testing"
)

func TestDefaultSocketPath(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	if got, want := DefaultSocketPath(), "/run/user/1000/supervise.sock"; got != want {
		t.Errorf("with XDG_RUNTIME_DIR: got %q, want %q", got, want)
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	want := fmt.Sprintf("/tmp/supervise-%d.sock", os.Geteuid())
	if os.Geteuid() == 0 {
		want = "/run/supervise.sock"
	}
	if got := DefaultSocketPath(); got != want {
		t.Errorf("without XDG_RUNTIME_DIR: got %q, want %q", got, want)
	}
}

func TestSocketPath(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/xdg")
	tests := []struct {
		name, flag, env, configured string
		want                        string
		enabled                     bool
	}{
		{"default", "", "", "", "/xdg/supervise.sock", true},
		{"config", "", "", "/c.sock", "/c.sock", true},
		{"env beats config", "", "/e.sock", "/c.sock", "/e.sock", true},
		{"flag beats env", "/f.sock", "/e.sock", "/c.sock", "/f.sock", true},
		{"config off", "", "", "off", "", false},
		{"env overrides config off", "", "/e.sock", "off", "/e.sock", true},
		{"env off", "", "off", "/c.sock", "", false},
		{"flag off", "off", "/e.sock", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SUPERVISE_SOCKET", tt.env)
			got, enabled := SocketPath(tt.flag, tt.configured)
			if got != tt.want || enabled != tt.enabled {
				t.Errorf("SocketPath(%q, %q) with env %q = %q, %v; want %q, %v",
					tt.flag, tt.configured, tt.env, got, enabled, tt.want, tt.enabled)
			}
		})
	}
}
