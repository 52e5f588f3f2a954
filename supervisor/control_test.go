package supervisor

import (
	"testing"

	"github.com/supervise/supervise/control"
)

// Every remote command of the registry has a handler in the supervisor's
// dispatch, and the dispatch has nothing else.
func TestControlHandlersCoverRegistry(t *testing.T) {
	var s Supervisor
	if err := control.CheckHandlers(s.controlHandlers()); err != nil {
		t.Fatal(err)
	}
}
