// Command bench runs the benchmarks of supervise against supervisord,
// runit, s6, pm2, tini, dumb-init and monit, and prints the figures as
// Markdown tables (and, with -json, writes every sample as JSON).
//
//	go run ./tests/bench/cmd/bench [-smoke] [-runs N] [-supervise BIN] [-json FILE] [-md FILE]
//	    [-figures LIST] [-peers LIST] [-light] [-profile] [-compare BIN] [-scale-ns LIST]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/supervise/supervise/tests/bench"
)

func main() {
	smoke := flag.Bool("smoke", false, "tiny sizes, short durations, one run")
	runs := flag.Int("runs", 0, "repetitions (default 3, 1 with -smoke)")
	sv := flag.String("supervise", "", "supervise binary (default: build ./cmd/supervise)")
	jsonOut := flag.String("json", "", "write all samples to this file")
	mdOut := flag.String("md", "", "write the Markdown tables to this file")
	work := flag.String("workdir", "", "scratch directory (default: a temporary one)")
	keep := flag.Bool("keep", false, "keep the scratch directory")
	figs := flag.String("figures", "", "comma-separated figures: restart,crash,startup,idle,shutdown,pid1,pid1pair,watchdog,wdtail,wdidle,log,storm,scale")
	light := flag.Bool("light", false, "supervise the C probe (start-up, idle and shutdown figures only)")
	profile := flag.Bool("profile", false, "with perf installed, add a perf profile of supervise to the wdidle figure")
	compare := flag.String("compare", "", "a second supervise binary watching the same heartbeat files in the wdidle figure")
	peers := flag.String("peers", "", "comma-separated peers to run (default: every one installed), e.g. supervise")
	scaleNs := flag.String("scale-ns", "", "comma-separated sizes of the scale figure (default 100,1000,10000)")
	flag.Parse()
	o := bench.Options{Smoke: *smoke, Runs: *runs, Supervise: *sv, WorkDir: *work, Keep: *keep, Log: os.Stderr, Light: *light, Profile: *profile, Compare: *compare}
	for _, f := range strings.Split(*scaleNs, ",") {
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bench: -scale-ns: bad size %q\n", f)
			os.Exit(2)
		}
		o.ScaleNs = append(o.ScaleNs, n)
	}
	if *peers != "" {
		o.Peers = strings.Split(*peers, ",")
	}
	if *figs != "" {
		o.Figures = strings.Split(*figs, ",")
	}
	r, err := bench.Run(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
	md := r.Markdown()
	fmt.Print(md)
	if *mdOut != "" {
		if err := os.WriteFile(*mdOut, []byte(md), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		}
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(r, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		}
	}
	if len(r.Missing) > 0 {
		os.Exit(1)
	}
}
