package demo

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// maxLogLines is how many of the services' log lines the demo prints
// after its tables; the rest are counted.
const maxLogLines = 20

// logBook keeps the services' log lines while the demo's tables are being
// measured, so that none lands between the lines of a table; the demo
// prints them at the end.
type logBook struct {
	mu    sync.Mutex
	lines []string
	more  int // lines past maxLogLines, counted only
}

// logger returns a text logger of the given least level that writes into
// the book.
func (b *logBook) logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: level}))
}

// Write takes one or more whole lines, as slog's text handler writes them.
func (b *logBook) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		if len(b.lines) < maxLogLines {
			b.lines = append(b.lines, string(line))
		} else {
			b.more++
		}
	}
	return len(p), nil
}

// Lines returns the kept lines and how many more there were.
func (b *logBook) Lines() ([]string, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.lines...), b.more
}

// print writes the kept lines, indented, after a heading.
func (b *logBook) print(w io.Writer) {
	lines, more := b.Lines()
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(w, "\nwhat the services logged while they were measured:\n")
	for _, l := range lines {
		fmt.Fprintf(w, "  %s\n", strings.TrimSpace(l))
	}
	if more > 0 {
		fmt.Fprintf(w, "  … and %d more lines\n", more)
	}
}

var _ io.Writer = (*logBook)(nil)
