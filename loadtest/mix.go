package loadtest

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// ErrBadTemplate is returned (wrapped) by ParseTemplate.
var ErrBadTemplate = errors.New("loadtest: bad template")

// Template is text with {{name}} or {{name.column}} variables, as a plan's
// paths, headers and bodies use them.
type Template struct {
	parts []templatePart
}

type templatePart struct {
	lit   string // literal text, or
	name  string // a variable's name,
	field string // and for a CSV variable, its column ("" = the first)
}

// ParseTemplate reads a template. A variable's name is letters, digits and
// underscores; a literal "{{" is written "{{{{".
func ParseTemplate(s string) (Template, error) {
	var t Template
	var lit strings.Builder
	for len(s) > 0 {
		i := strings.Index(s, "{{")
		if i < 0 {
			lit.WriteString(s)
			break
		}
		lit.WriteString(s[:i])
		s = s[i+2:]
		if strings.HasPrefix(s, "{{") {
			lit.WriteString("{{")
			s = s[2:]
			continue
		}
		j := strings.Index(s, "}}")
		if j < 0 {
			return Template{}, fmt.Errorf("%w: %q: {{ without a closing }}", ErrBadTemplate, "{{"+s)
		}
		ref := strings.TrimSpace(s[:j])
		s = s[j+2:]
		name, field, dotted := strings.Cut(ref, ".")
		if !isName(name) || dotted && (field == "" || strings.TrimSpace(field) != field) || strings.ContainsAny(field, "{}") {
			return Template{}, fmt.Errorf("%w: {{%s}}: want {{name}} or {{name.column}}, a name of letters, digits and _", ErrBadTemplate, ref)
		}
		if lit.Len() > 0 {
			t.parts = append(t.parts, templatePart{lit: lit.String()})
			lit.Reset()
		}
		t.parts = append(t.parts, templatePart{name: name, field: field})
	}
	if lit.Len() > 0 {
		t.parts = append(t.parts, templatePart{lit: lit.String()})
	}
	return t, nil
}

func isName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// Vars returns the names of the variables t uses.
func (t Template) Vars() []string {
	var names []string
	for _, p := range t.parts {
		if p.name != "" && !slices.Contains(names, p.name) {
			names = append(names, p.name)
		}
	}
	return names
}

// Generator draws a variable's values. Draw is called by one sender at a
// time with that sender's own rng; state shared between senders must be
// safe for concurrent use.
type generator interface {
	// newDrawer returns a sender's own drawer.
	newDrawer(rng *rand.Rand) func() []string
}

// sequenceGen counts start, start+step, …; with N generators in a split
// run, slice i draws start+i, start+i+N, … so that none repeats another's.
type sequenceGen struct {
	start, step int64
	next        *atomic.Int64
}

func (g sequenceGen) newDrawer(*rand.Rand) func() []string {
	return func() []string {
		return []string{strconv.FormatInt(g.start+(g.next.Add(1)-1)*g.step, 10)}
	}
}

type uniformGen struct{ min, max int64 }

func (g uniformGen) newDrawer(rng *rand.Rand) func() []string {
	return func() []string { return []string{strconv.FormatInt(g.min+rng.Int64N(g.max-g.min+1), 10)} }
}

// zipfGen draws min…max with P(min+k) ∝ (v+k)^-s: a few hot values and a
// long tail, as real traffic reads keys.
type zipfGen struct {
	min, max int64
	s, v     float64
}

func (g zipfGen) newDrawer(rng *rand.Rand) func() []string {
	z := rand.NewZipf(rng, g.s, g.v, uint64(g.max-g.min))
	return func() []string { return []string{strconv.FormatInt(g.min+int64(z.Uint64()), 10)} }
}

type choiceGen struct{ values []string }

func (g choiceGen) newDrawer(rng *rand.Rand) func() []string {
	return func() []string { return []string{g.values[rng.IntN(len(g.values))]} }
}

// csvGen draws whole rows of a CSV file whose first line names the
// columns, in order (wrapping round) or at random.
type csvGen struct {
	columns []string
	rows    [][]string
	random  bool
	next    *atomic.Int64
	slice   int64 // this generator's slice of a split run, and how many
	slices  int64
}

func (g csvGen) newDrawer(rng *rand.Rand) func() []string {
	return func() []string {
		if g.random {
			return g.rows[rng.IntN(len(g.rows))]
		}
		i := g.slice + (g.next.Add(1)-1)*g.slices
		return g.rows[i%int64(len(g.rows))]
	}
}

// readCSV reads a CSV file with a header line.
func readCSV(path string) (columns []string, rows [][]string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	columns, err = r.Read()
	if err == io.EOF {
		return nil, nil, fmt.Errorf("%s is empty: want a header line naming the columns, then rows", path)
	}
	if err != nil {
		return nil, nil, err
	}
	for {
		row, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return nil, nil, fmt.Errorf("%s has a header and no rows", path)
	}
	return columns, rows, nil
}

// request is one entry of a plan's mix, compiled.
type request struct {
	name, method string
	path         Template
	headers      []header
	body         *Template
	weight       float64
}

type header struct {
	key   string
	value Template
}

// mix is a plan's weighted request mix with its variables.
type mix struct {
	base     string // the target's scheme://host[/prefix], no trailing slash
	requests []request
	cum      []float64 // cumulative weights
	names    []string  // variable names, index = position in gens
	gens     []generator
	columns  [][]string // a CSV variable's column names, else nil
}

// source returns sender i's request maker.
func (m *mix) source(seed uint64) func(i int) func(uint64) Target {
	return func(i int) func(uint64) Target {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		draw := make([]func() []string, len(m.gens))
		for j, g := range m.gens {
			draw[j] = g.newDrawer(rng)
		}
		vals := make([][]string, len(m.gens))
		total := m.cum[len(m.cum)-1]
		return func(uint64) Target {
			r := &m.requests[0]
			if len(m.requests) > 1 {
				x := rng.Float64() * total
				k, _ := slices.BinarySearch(m.cum, x)
				r = &m.requests[min(k, len(m.requests)-1)]
			}
			clear(vals) // a variable drawn once per request, however often it is used
			get := func(p templatePart, esc func(string) string) string {
				j := slices.Index(m.names, p.name)
				if vals[j] == nil {
					vals[j] = draw[j]()
				}
				v := vals[j][0]
				if p.field != "" {
					v = vals[j][slices.Index(m.columns[j], p.field)]
				}
				return esc(v)
			}
			t := Target{Method: r.method, URL: m.base + m.renderPath(r.path, get)}
			if len(r.headers) > 0 {
				t.Header = make(http.Header, len(r.headers))
				for _, h := range r.headers {
					t.Header.Add(h.key, render(h.value, get, raw))
				}
			}
			if r.body != nil {
				t.Body = []byte(render(*r.body, get, raw))
			}
			return t
		}
	}
}

func raw(s string) string { return s }

// renderPath fills a path template, escaping values for the path before
// the first ? and for the query after it.
func (m *mix) renderPath(t Template, get func(templatePart, func(string) string) string) string {
	var b strings.Builder
	query := false
	for _, p := range t.parts {
		if p.name == "" {
			b.WriteString(p.lit)
			query = query || strings.Contains(p.lit, "?")
			continue
		}
		if query {
			b.WriteString(get(p, url.QueryEscape))
		} else {
			b.WriteString(get(p, url.PathEscape))
		}
	}
	return b.String()
}

func render(t Template, get func(templatePart, func(string) string) string, esc func(string) string) string {
	if len(t.parts) == 1 && t.parts[0].name == "" {
		return t.parts[0].lit
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.name == "" {
			b.WriteString(p.lit)
		} else {
			b.WriteString(get(p, esc))
		}
	}
	return b.String()
}
