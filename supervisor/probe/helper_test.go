package probe

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

// helperMain runs the test binary as a helper process: "server" serves
// GET /healthz (200) on a loopback port and prints its address, so that a
// benchmark measures the probing side alone.
func helperMain(mode string) int {
	switch mode {
	case "server":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(ln.Addr().String())
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
		http.Serve(ln, mux)
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown mode", mode)
	return 2
}
