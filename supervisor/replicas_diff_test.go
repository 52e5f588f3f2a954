package supervisor

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/supervise/supervise/control"
)

// The diff of a reload starts from what runs: after a scale, from the
// scaled count.
func TestReloadDiffAfterScale(t *testing.T) {
	const prog = `
[programs.web]
command = ["/bin/sleep", "1000"]
replicas = %d
`
	h := startSup(t, fmt.Sprintf(prog, 2), nil)
	h.allRunning([]string{"web:0", "web:1"})
	diff := func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d, err := h.sup.ReloadDiff(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(d.String(), h.dir+"/", "")
	}
	h.writeConfig(fmt.Sprintf(prog, 4))
	if got, want := diff(), "changed web (supervise.toml:5): replicas 2 -> 4 (starts web:2, web:3); in place\n"; !strings.HasPrefix(got, want) {
		t.Errorf("diff\n%s\nwant\n%s", got, want)
	}
	if r := h.scale("web", 5); !r.OK {
		t.Fatalf("scale: %+v", r)
	}
	h.allRunning([]string{"web:0", "web:1", "web:2", "web:3", "web:4"})
	if got, want := diff(), "changed web (supervise.toml:5): replicas 5 -> 4 (stops web:4); in place\n"; !strings.HasPrefix(got, want) {
		t.Errorf("diff after scale\n%s\nwant\n%s", got, want)
	}
	if r := h.ctl(control.CmdReload); !r.OK || r.Message != "removed web:4" {
		t.Fatalf("reload: %+v", r)
	}
	if got := diff(); got != "no change: 1 program unchanged\n" {
		t.Errorf("diff after the reload: %q", got)
	}
}
