package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrapeTimeout bounds one scrape of the target's /metrics, so that a
// stuck target costs a gap in its series, not a stuck phase.
const scrapeTimeout = 900 * time.Millisecond

// sample is one scrape of the target.
type sample struct {
	at                   time.Time
	cpu, rss, goroutines *float64           // process_cpu_seconds_total, process_resident_memory_bytes, go_goroutines
	series               map[string]float64 // the plan's named series, summed over their labels
}

// scraper reads the target's Prometheus endpoint once a second while a
// phase runs.
type scraper struct {
	url    string
	series []string
	client *http.Client

	mu      sync.Mutex
	samples []sample
	lastErr error
}

// run scrapes every second until ctx ends.
func (s *scraper) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		s.scrapeOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *scraper) scrapeOnce(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	at := time.Now()
	smp, err := s.scrape(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.lastErr = err
		return
	}
	smp.at = at
	s.samples = append(s.samples, smp)
}

func (s *scraper) scrape(ctx context.Context) (sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return sample{}, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := s.client.Do(req)
	if err != nil {
		return sample{}, fmt.Errorf("scraping %s: %w", s.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return sample{}, fmt.Errorf("scraping %s: status %d", s.url, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return sample{}, fmt.Errorf("scraping %s: %w", s.url, err)
	}
	smp := sample{
		cpu:        sum(fams["process_cpu_seconds_total"]),
		rss:        sum(fams["process_resident_memory_bytes"]),
		goroutines: sum(fams["go_goroutines"]),
	}
	for _, name := range s.series {
		if v := sum(fams[name]); v != nil {
			if smp.series == nil {
				smp.series = map[string]float64{}
			}
			smp.series[name] = *v
		}
	}
	return smp, nil
}

// sum adds a family's samples over their labels; nil if it has none.
func sum(f *dto.MetricFamily) *float64 {
	if f == nil || len(f.Metric) == 0 {
		return nil
	}
	var v float64
	for _, m := range f.Metric {
		switch {
		case m.Counter != nil:
			v += m.Counter.GetValue()
		case m.Gauge != nil:
			v += m.Gauge.GetValue()
		case m.Untyped != nil:
			v += m.Untyped.GetValue()
		case m.Summary != nil:
			v += m.Summary.GetSampleSum()
		case m.Histogram != nil:
			v += m.Histogram.GetSampleSum()
		}
	}
	return &v
}

// attach puts the samples taken since start on the series' seconds: each
// second gets the last sample taken in it, and CPU is the rate of
// process_cpu_seconds_total since the sample before.
func (s *scraper) attach(start time.Time, series []Point) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var prev *sample
	for i := range s.samples {
		smp := &s.samples[i]
		sec := int(smp.at.Sub(start) / time.Second)
		if sec >= 0 && sec < len(series) {
			p := &series[sec]
			p.TargetRSS, p.TargetGoroutines = smp.rss, smp.goroutines
			if len(smp.series) > 0 {
				p.TargetSeries = smp.series
			}
			if prev != nil && prev.cpu != nil && smp.cpu != nil {
				if dt := smp.at.Sub(prev.at).Seconds(); dt > 0 {
					cpu := (*smp.cpu - *prev.cpu) / dt
					p.TargetCPU = &cpu
				}
			}
		}
		prev = smp
	}
	if len(s.samples) == 0 && s.lastErr != nil {
		return s.lastErr
	}
	return nil
}
