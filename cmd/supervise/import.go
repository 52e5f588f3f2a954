package main

import (
	"fmt"
	"io"
	"slices"

	"github.com/supervise/supervise/conf"
	"github.com/supervise/supervise/conf/importer"
	"github.com/supervise/supervise/control"
)

// cmdImport converts another supervisor's configuration (SPEC §17): the
// TOML on stdout, what was not converted exactly on stderr, exit 0; a file
// that cannot be read or parsed exits 2.
func cmdImport(inv *control.Invocation, stdout, stderr io.Writer) (int, error) {
	format := importer.Format(inv.Value("format"))
	if format != "" && !slices.Contains(importer.Formats, format) {
		return 2, usageError{fmt.Sprintf("--format %q: want supervisord, procfile or process-compose", format)}
	}
	res, err := importer.ConvertFile(inv.Value("file"), importer.Options{Format: format})
	if err != nil {
		fmt.Fprintf(stderr, "supervise import: %v\n", err)
		return 2, nil
	}
	if _, err := stdout.Write(res.TOML); err != nil {
		return 1, fmt.Errorf("import: writing the output: %w", err)
	}
	for _, n := range res.Notes {
		fmt.Fprintln(stderr, n)
	}
	if len(res.Notes) > 0 {
		fmt.Fprintf(stderr, "supervise import: %s of %s not converted exactly, listed above (%s)\n",
			conf.Plural(len(res.Notes), "setting"), inv.Value("file"), res.Format)
	}
	return 0, nil
}
