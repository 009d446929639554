package cache_test

import (
	"context"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // the zones of the tests, whatever the machine has installed

	"github.com/strata-dev/strata/cache"
)

func TestParsePeak(t *testing.T) {
	at := time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC) // the fake clock's start
	for _, tc := range []struct {
		in, next, err string
	}{
		{in: "02:00", next: "2023-11-15T02:00:00Z"},                                                           // daily, UTC without a zone
		{in: " 23:59 ", next: "2023-11-14T23:59:00Z"},                                                         // later today; spaces trimmed
		{in: "22:13", next: "2023-11-15T22:13:00Z"},                                                           // already past today: tomorrow
		{in: "19:00 Europe/London", next: "2023-11-15T19:00:00Z"},                                             // a zone (GMT in November)
		{in: "19:00 America/New_York", next: "2023-11-15T00:00:00Z"},                                          // a zone behind UTC: still today there
		{in: "2026-12-24T19:00:00+01:00", next: "2026-12-24T18:00:00Z"},                                       // once, absolute
		{in: "2020-01-01T00:00:00Z", next: ""},                                                                // once, past: no occurrence left
		{in: "", err: `cache: peak "": empty; want "HH:MM"`},                                                  // empty
		{in: "7pm", err: `cache: peak "7pm": want "HH:MM"`},                                                   // not a clock
		{in: "9:00", err: `cache: peak "9:00": want "HH:MM"`},                                                 // two digits each
		{in: "24:00", err: `cache: peak "24:00": hour 24 is past 23`},                                         // hour range
		{in: "19:60", err: `cache: peak "19:60": minute 60 is past 59`},                                       // minute range
		{in: "+1:00", err: `cache: peak "+1:00": want "HH:MM"`},                                               // no signs
		{in: "19:00 Mars/Olympus", err: `cache: peak "19:00 Mars/Olympus": unknown time zone "Mars/Olympus"`}, // zone unknown
		{in: "19:00 Local", err: `time zone "Local": name an IANA zone`},                                      // the machine's zone is not a clear schedule
		{in: "2026-12-24 19:00", err: `cache: peak "2026-12-24 19:00": not an RFC 3339 time`},                 // a date without the T and offset
	} {
		p, err := cache.ParsePeak(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParsePeak(%q) = %v, %v; want error containing %q", tc.in, p, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePeak(%q): %v", tc.in, err)
			continue
		}
		got := ""
		if n := p.Next(at); !n.IsZero() {
			got = n.UTC().Format(time.RFC3339)
		}
		if got != tc.next {
			t.Errorf("ParsePeak(%q).Next = %q, want %q", tc.in, got, tc.next)
		}
		if again, err := cache.ParsePeak(p.String()); err != nil || again.String() != p.String() || !again.Next(at).Equal(p.Next(at)) {
			t.Errorf("ParsePeak(%q).String() = %q does not parse back (%v)", tc.in, p.String(), err)
		}
	}
}

func TestParsePeaks(t *testing.T) {
	for _, tc := range []struct {
		in  string
		n   int
		err string
	}{
		{in: "", n: 0},                                                         // no peaks
		{in: "12:00, 19:00 Europe/London", n: 2},                               // a list
		{in: "12:00,,19:00", err: `cache: peak 2 "": empty`},                   // the bad entry is named by position
		{in: "12:00, 25:00", err: `cache: peak 2 "25:00": hour 25 is past 23`}, // and by its text
	} {
		ps, err := cache.ParsePeaks(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParsePeaks(%q) = %v; want error containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || len(ps) != tc.n {
			t.Errorf("ParsePeaks(%q) = %v, %v; want %d peaks", tc.in, ps, err, tc.n)
		}
	}
}

func FuzzParsePeak(f *testing.F) {
	for _, s := range []string{"19:00", "19:00 Europe/London", "2026-12-24T19:00:00Z", "", "24:00", "1:0", "19:00 ../../etc/passwd"} {
		f.Add(s)
	}
	at := time.Unix(1_700_000_000, 0)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := cache.ParsePeak(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "cache: peak ") || p != (cache.Peak{}) {
				t.Fatalf("ParsePeak(%q): error %q, peak %v", s, err, p)
			}
			return
		}
		if p.IsZero() {
			t.Fatalf("ParsePeak(%q) returned the zero Peak", s)
		}
		if n := p.Next(at); p.Daily() && (!n.After(at) || n.Sub(at) > 26*time.Hour) {
			t.Fatalf("ParsePeak(%q).Next(%v) = %v", s, at, n)
		}
		if again, err := cache.ParsePeak(p.String()); err != nil || again.String() != p.String() {
			t.Fatalf("ParsePeak(%q).String() = %q does not parse back: %v", s, p.String(), err)
		}
	})
}

// warmup is one scheduled warm-up: the peak it was for, and the keys it
// read.
type warmup struct {
	peak time.Time
	keys int
}

// warmRecorder is an AutoWarm loader that records the keys it loads, and
// a hook that hands over each scheduled warm-up.
type warmRecorder struct {
	mu     sync.Mutex
	keys   []string
	warms  chan warmup
	origin *origin
}

func newWarmRecorder(o *origin) *warmRecorder {
	return &warmRecorder{warms: make(chan warmup, 16), origin: o}
}

func (w *warmRecorder) load(ctx context.Context, key string) (string, error) {
	w.mu.Lock()
	w.keys = append(w.keys, key)
	w.mu.Unlock()
	return w.origin.load(ctx, key)
}

func (w *warmRecorder) loaded() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := slices.Clone(w.keys)
	w.keys = nil
	slices.Sort(k)
	return k
}

// next waits for the next scheduled warm-up (a fence, not a timer: the
// bound only turns a lost warm-up into a failure).
func (w *warmRecorder) next(t *testing.T) warmup {
	t.Helper()
	select {
	case p := <-w.warms:
		return p
	case <-time.After(30 * time.Second):
		t.Fatal("no scheduled warm-up")
		return warmup{}
	}
}

// none checks that no scheduled warm-up ran.
func (w *warmRecorder) none(t *testing.T, when string) {
	t.Helper()
	select {
	case p := <-w.warms:
		t.Fatalf("%s: a warm-up ran for the peak at %v", when, p.peak)
	default:
	}
}

// peakCache makes an L1-only cache on e's clock that warms its top 2 keys
// ahead of peaks, and reads a (5 times), b (3) and c (once) through it.
func peakCache(t *testing.T, e *env, peaks string) (*cache.Cache[string], *warmRecorder) {
	t.Helper()
	o := newOrigin()
	for _, k := range []string{"a", "b", "c"} {
		o.put(k, "v"+k)
	}
	w := newWarmRecorder(o)
	ps, err := cache.ParsePeaks(peaks)
	if err != nil {
		t.Fatal(err)
	}
	// A window of two days: the hot set read on day one is still hot on
	// day two. An infinite WarmRise turns the surge trigger off, so that
	// every warm-up here is a scheduled one (a surge seen in the reads of
	// a scheduled warm-up would race it for the keys).
	cfg := cache.Config[string]{TrackHot: true, AutoWarm: w.load, WarmTopN: 2, Peaks: ps, HotWindow: 48 * time.Hour, WarmRise: math.Inf(1)}
	cache.OnPeakWarm(&cfg, func(p time.Time, keys int) { w.warms <- warmup{p, keys} })
	c := e.cache(cfg)
	w.read(t, c)
	return c, w
}

// read reads a (8 times), b (4) and c (once) through c.
func (w *warmRecorder) read(t *testing.T, c *cache.Cache[string]) {
	t.Helper()
	for _, k := range strings.Split("aaaaaaaabbbbc", "") {
		if _, _, err := c.Get(context.Background(), k, w.origin.load); err != nil {
			t.Fatal(err)
		}
	}
}

// timers is how many timers a TrackHot cache keeps on the fake clock:
// the hotness loop's three tickers, and the peak loop's timer while a peak
// is ahead.
const hotTickers = 3

// TestScheduledWarmup: the hot set is warmed at peak−lead, not before,
// once per occurrence, and a daily peak recurs the next day.
func TestScheduledWarmup(t *testing.T) {
	e := newEnv(t)
	clk := e.clk
	start := clk.Now() // 2023-11-14T22:13:20Z
	c, w := peakCache(t, e, "02:00")
	peak := time.Date(2023, 11, 15, 2, 0, 0, 0, time.UTC)
	warmAt := peak.Add(-cache.DefaultPeakLead)
	eventually(t, "the peak timer is set", func() bool { return clk.Pending() == hotTickers+1 })

	clk.Advance(warmAt.Sub(start) - time.Second)
	w.none(t, "a second before peak−lead")
	if s := c.Stats(); s.ScheduledWarmups != 0 || s.Warmed != 0 {
		t.Fatalf("before peak−lead: %d warm-ups, %d keys warmed", s.ScheduledWarmups, s.Warmed)
	}

	clk.Advance(time.Second)
	if got := w.next(t); !got.peak.Equal(peak) || got.keys != 2 {
		t.Fatalf("warmed %d keys for the peak at %v, want 2 for %v", got.keys, got.peak, peak)
	}
	if got := w.loaded(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("warmed %q, want the hot set [a b]", got)
	}
	if s := c.Stats(); s.ScheduledWarmups != 1 || s.Warmed != 2 {
		t.Fatalf("at peak−lead: %d warm-ups, %d keys warmed; want 1 and 2", s.ScheduledWarmups, s.Warmed)
	}

	// Through the peak and the rest of the day, with traffic: no second
	// warm-up.
	eventually(t, "the next peak's timer is set", func() bool { return clk.Pending() == hotTickers+1 })
	clk.Advance(time.Hour)
	w.read(t, c)
	clk.Advance(20 * time.Hour)
	w.none(t, "the rest of the day")

	// The next day's occurrence, when the entries have long expired.
	clk.Advance(warmAt.Add(24 * time.Hour).Sub(clk.Now()))
	if got := w.next(t); !got.peak.Equal(peak.Add(24*time.Hour)) || got.keys != 2 {
		t.Fatalf("second warm-up: %d keys for the peak at %v, want 2 for %v", got.keys, got.peak, peak.Add(24*time.Hour))
	}
	if got := w.loaded(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("second warm-up loaded %q, want the hot set [a b]", got)
	}
	if s := c.Stats(); s.ScheduledWarmups != 2 || s.Warmed != 4 {
		t.Fatalf("after two days: %d warm-ups, %d keys warmed; want 2 and 4", s.ScheduledWarmups, s.Warmed)
	}
	// The hot set is in L1, fresh.
	for _, k := range []string{"a", "b"} {
		if _, info, _ := c.Get(context.Background(), k, nil); info.Source != cache.SourceL1 {
			t.Fatalf("%s after the warm-up: from %v, want l1", k, info.Source)
		}
	}
}

// TestScheduledWarmupOnce: a one-off peak warms once and the loop ends; a
// peak already inside its lead at start warms at once; a past one never.
func TestScheduledWarmupOnce(t *testing.T) {
	e := newEnv(t)
	clk := e.clk
	start := clk.Now()
	soon := start.Add(10 * time.Minute) // inside the 30-minute lead
	_, w := peakCache(t, e, "2020-01-01T00:00:00Z,"+soon.Format(time.RFC3339))
	if got := w.next(t); !got.peak.Equal(soon) {
		t.Fatalf("warmed for %v, want %v", got.peak, soon)
	}
	eventually(t, "the peak loop ends", func() bool { return clk.Pending() == hotTickers })
	clk.Advance(48 * time.Hour)
	w.none(t, "after the only peak")
}

// TestScheduledWarmupClose: Close stops the peak loop: its timer is gone
// and no warm-up runs after.
func TestScheduledWarmupClose(t *testing.T) {
	e := newEnv(t)
	clk := e.clk
	c, w := peakCache(t, e, "02:00")
	eventually(t, "the peak timer is set", func() bool { return clk.Pending() == hotTickers+1 })
	c.Close()
	if n := clk.Pending(); n != 0 {
		t.Fatalf("%d timers left after Close", n)
	}
	clk.Advance(48 * time.Hour)
	w.none(t, "after Close")
}

// TestPeaksConfig: Peaks are checked by New.
func TestPeaksConfig(t *testing.T) {
	p, _ := cache.ParsePeak("19:00")
	load := func(context.Context, string) (string, error) { return "", nil }
	for _, tc := range []struct {
		name string
		cfg  cache.Config[string]
		err  string
	}{
		{"peaks without a loader", cache.Config[string]{TrackHot: true, Peaks: []cache.Peak{p}}, "Peaks need AutoWarm"},                                 // nothing to warm with
		{"the zero peak", cache.Config[string]{TrackHot: true, AutoWarm: load, Peaks: []cache.Peak{{}}}, "Peaks[0] is the zero Peak"},                   // not made by ParsePeak
		{"negative lead", cache.Config[string]{TrackHot: true, AutoWarm: load, Peaks: []cache.Peak{p}, PeakLead: -time.Minute}, "PeakLead is negative"}, // a lead is ahead
	} {
		if c, err := cache.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.err) {
			if c != nil {
				c.Close()
			}
			t.Errorf("%s: New = %v, want an error containing %q", tc.name, err, tc.err)
		}
	}
}
