package loadtest

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseTemplate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		vars []string
		err  bool
	}{
		{"/users/42", nil, false},
		{"/users/{{user}}", []string{"user"}, false},
		{"/u/{{ user }}/{{row.id}}?q={{user}}", []string{"user", "row"}, false},
		{"literal {{{{ braces", nil, false},
		{"/{{}}", nil, true},
		{"/{{a b}}", nil, true},
		{"/{{user", nil, true},
		{"/{{user.}}", nil, true},
		{"/{{user. id}}", nil, true},
	} {
		tmpl, err := ParseTemplate(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("%q: err = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrBadTemplate) {
				t.Errorf("%q: %v does not wrap ErrBadTemplate", tc.in, err)
			}
			continue
		}
		if got := tmpl.Vars(); strings.Join(got, ",") != strings.Join(tc.vars, ",") {
			t.Errorf("%q: vars %v, want %v", tc.in, got, tc.vars)
		}
	}
}

func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"/users/{{user}}", "{{{{", "{{a.b}}x{{c}}", "}}{{"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tmpl, err := ParseTemplate(s)
		if err != nil {
			if !errors.Is(err, ErrBadTemplate) {
				t.Fatalf("%v does not wrap ErrBadTemplate", err)
			}
			return
		}
		// Rendering with every variable as "" leaves the literals, whose
		// text is the input's with {{{{ read as {{.
		got := render(tmpl, func(templatePart, func(string) string) string { return "" }, raw)
		if len(got) > len(s) {
			t.Fatalf("%q rendered longer: %q", s, got)
		}
	})
}

// plan compiles a plan for the mix tests.
func mustPlan(t *testing.T, src string, opt ParseOptions) *Plan {
	t.Helper()
	p, err := ParsePlan([]byte(src), opt)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMixDraws(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "users.csv"), []byte("id,name\n1,ann lee\n2,bob\n3,cy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, `target: http://127.0.0.1:1/api
variables:
  z: {zipf: {min: 1, max: 1000}}
  u: {uniform: {min: 5, max: 7}}
  s: {sequence: {start: 100, step: 2}}
  c: {choice: [red shoes, blue]}
  row: {csv: {file: users.csv}}
requests:
  - name: z
    weight: 3
    path: /z/{{z}}/{{z}}
  - name: rest
    weight: 1
    method: POST
    path: /s/{{s}}/{{row.name}}?q={{c}}&u={{u}}
    headers: {X-User: '{{row.id}}'}
    body: '{"name": "{{row.name}}", "id": {{row.id}}}'
phases: [{name: a, rate: 1, duration: 1s}]
`, ParseOptions{Dir: dir})
	next := p.mix.source(7)(0)
	counts := map[string]int{}
	zipf := map[int]int{}
	seqs := []int{}
	const n = 4000
	for range n {
		tg := next(0)
		switch {
		case strings.HasPrefix(tg.URL, "http://127.0.0.1:1/api/z/"):
			counts["z"]++
			parts := strings.Split(strings.TrimPrefix(tg.URL, "http://127.0.0.1:1/api/z/"), "/")
			if parts[0] != parts[1] {
				t.Fatalf("one variable drew twice in one request: %s", tg.URL)
			}
			v, _ := strconv.Atoi(parts[0])
			if v < 1 || v > 1000 {
				t.Fatalf("zipf value %d outside 1..1000", v)
			}
			zipf[v]++
		case strings.HasPrefix(tg.URL, "http://127.0.0.1:1/api/s/"):
			counts["rest"]++
			var seq int
			var name, rest string
			rest = strings.TrimPrefix(tg.URL, "http://127.0.0.1:1/api/s/")
			seqStr, rest, _ := strings.Cut(rest, "/")
			seq, _ = strconv.Atoi(seqStr)
			seqs = append(seqs, seq)
			name, query, _ := strings.Cut(rest, "?")
			if name != "ann%20lee" && name != "bob" && name != "cy" {
				t.Fatalf("path value not escaped for a path: %s", tg.URL)
			}
			if !strings.Contains(query, "q=red+shoes") && !strings.Contains(query, "q=blue") {
				t.Fatalf("query value not escaped for a query: %s", tg.URL)
			}
			if tg.Method != "POST" || tg.Header.Get("X-User") == "" || !strings.Contains(string(tg.Body), `"id": `+tg.Header.Get("X-User")+"}") {
				t.Fatalf("one CSV row per request: %s %v %s", tg.URL, tg.Header, tg.Body)
			}
		default:
			t.Fatalf("unexpected URL %s", tg.URL)
		}
	}
	if share := float64(counts["z"]) / n; math.Abs(share-0.75) > 0.05 {
		t.Errorf("weight 3 of 4 drew %.2f of requests", share)
	}
	if zipf[1] < 5*zipf[100] || zipf[1] < n/20 {
		t.Errorf("zipf not skewed: 1 drawn %d times, 100 drawn %d", zipf[1], zipf[100])
	}
	for i, s := range seqs {
		if s != 100+2*i {
			t.Fatalf("sequence %v, want 100, 102, …", seqs[:i+1])
		}
	}
}

// TestMixSplitSequences: the slices of a split run draw disjoint
// sequences and CSV rows.
func TestMixSplitSequences(t *testing.T) {
	src := "target: http://h\nvariables: {n: {sequence: {start: 1}}}\nrequests: [{path: '/{{n}}'}]\nphases: [{name: a, rate: 2, duration: 1s}]\n"
	seen := map[string]int{}
	for slice := range 3 {
		p := mustPlan(t, src, ParseOptions{Slice: slice, Slices: 3})
		next := p.mix.source(1)(0)
		for range 5 {
			seen[next(0).URL]++
		}
	}
	if len(seen) != 15 {
		t.Errorf("3 slices × 5 draws gave %d distinct values: %v", len(seen), seen)
	}
	for i := 1; i <= 15; i++ {
		if seen["http://h/"+strconv.Itoa(i)] != 1 {
			t.Errorf("value %d drawn %d times", i, seen["http://h/"+strconv.Itoa(i)])
		}
	}
}

func TestProfile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     profile
		total int64
	}{
		{"constant", constant(100, 2*time.Second), 200},
		{"fractional", constant(33.3, time.Second), 34},
		{"ramp", profile{{10 * time.Second, 0, 100}}, 500},
		{"down", profile{{10 * time.Second, 100, 0}}, 500},
		{"spike", profile{{time.Second, 10, 10}, {time.Second, 100, 100}, {time.Second, 10, 10}}, 120},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.total(0); got != tc.total {
				t.Errorf("total %d, want %d", got, tc.total)
			}
			// Each send's time is where the count reaches its number, in
			// order, and none falls past the end.
			var prev time.Duration = -1
			n := int64(0)
			for ; ; n++ {
				at, ok := tc.p.at(n, 0)
				if !ok {
					break
				}
				if at < prev || at >= tc.p.duration() {
					t.Fatalf("send %d at %v after %v, profile %v long", n, at, prev, tc.p.duration())
				}
				if c := tc.p.count(at); math.Abs(c-float64(n)) > 1e-6*float64(n+1) {
					t.Fatalf("send %d at %v where the count is %v", n, at, c)
				}
				prev = at
			}
			if n != tc.total {
				t.Errorf("%d sends scheduled, total says %d", n, tc.total)
			}
		})
	}
	// Slices interleave: 4 generators of 100/s send at 0, 2.5, 5, 7.5 ms.
	p := constant(100, time.Second)
	for i := range 4 {
		at, _ := p.at(0, float64(i)/4)
		if want := time.Duration(i) * 2500 * time.Microsecond; at != want {
			t.Errorf("slice %d's first send at %v, want %v", i, at, want)
		}
	}
}
