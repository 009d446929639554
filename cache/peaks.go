package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultPeakLead is how long before a known peak the scheduled warm-up
// runs (see [Config.Peaks]).
const DefaultPeakLead = 30 * time.Minute // guide, Prime Video case: pre-scaling 30 minutes ahead of a known peak

// maxPeakText bounds how much of a bad entry an error repeats.
const maxPeakText = 64

// A Peak is a known traffic peak: either daily, at a time of day in a
// time zone, or once, at an absolute time. Make one with [ParsePeak]; the
// zero Peak is not a peak.
type Peak struct {
	at           time.Time      // a one-off peak; zero for a daily one
	hour, minute int            // a daily peak's time of day
	loc          *time.Location // a daily peak's zone; nil in the zero Peak
}

// ParsePeak parses one peak:
//
//   - "HH:MM" or "HH:MM ZONE": every day at that time (24-hour clock) in
//     the IANA time zone ZONE ("19:00 Europe/London"), UTC without one;
//   - an RFC 3339 time ("2026-12-24T19:00:00+01:00"): once.
//
// An error names the entry and what is wrong with it.
func ParsePeak(s string) (Peak, error) {
	p, err := parsePeak(strings.TrimSpace(s))
	if err != nil {
		return Peak{}, fmt.Errorf("cache: peak %s: %w", quotePeak(s), err)
	}
	return p, nil
}

// ParsePeaks parses a comma-separated list of peaks (see [ParsePeak]); an
// empty list is no peaks. An error names the bad entry and its position.
func ParsePeaks(list string) ([]Peak, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var peaks []Peak
	for i, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		p, err := parsePeak(s)
		if err != nil {
			return nil, fmt.Errorf("cache: peak %d %s: %w", i+1, quotePeak(s), err)
		}
		peaks = append(peaks, p)
	}
	return peaks, nil
}

var errPeakForm = errors.New(`want "HH:MM", "HH:MM ZONE" (daily; UTC without a zone) or an RFC 3339 time such as "2026-12-24T19:00:00Z" (once)`)

func parsePeak(s string) (Peak, error) {
	if s == "" {
		return Peak{}, fmt.Errorf("empty; %w", errPeakForm)
	}
	if len(s) > 4 && s[4] == '-' { // a date: YYYY-...
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return Peak{}, fmt.Errorf("not an RFC 3339 time; %w", errPeakForm)
		}
		return Peak{at: t, loc: t.Location()}, nil
	}
	clock, zone, hasZone := strings.Cut(s, " ")
	hh, mm, ok := strings.Cut(clock, ":")
	if !ok || len(hh) != 2 || len(mm) != 2 {
		return Peak{}, fmt.Errorf("%w", errPeakForm)
	}
	hour, err1 := strconv.Atoi(hh)
	minute, err2 := strconv.Atoi(mm)
	switch {
	case err1 != nil || err2 != nil || hh[0] == '+' || hh[0] == '-' || mm[0] == '+' || mm[0] == '-':
		return Peak{}, fmt.Errorf("%w", errPeakForm)
	case hour > 23:
		return Peak{}, fmt.Errorf("hour %d is past 23", hour)
	case minute > 59:
		return Peak{}, fmt.Errorf("minute %d is past 59", minute)
	}
	loc := time.UTC
	if hasZone {
		zone = strings.TrimSpace(zone)
		if zone == "" || zone == "Local" {
			return Peak{}, fmt.Errorf("time zone %q: name an IANA zone such as Europe/London, or none for UTC", zone)
		}
		if loc, err1 = time.LoadLocation(zone); err1 != nil {
			return Peak{}, fmt.Errorf("unknown time zone %s", quotePeak(zone))
		}
	}
	return Peak{hour: hour, minute: minute, loc: loc}, nil
}

// quotePeak quotes a user's entry, cut to maxPeakText bytes.
func quotePeak(s string) string {
	if len(s) > maxPeakText {
		return strconv.Quote(s[:maxPeakText]) + "…"
	}
	return strconv.Quote(s)
}

// IsZero reports whether p is the zero Peak (not made by [ParsePeak]).
func (p Peak) IsZero() bool { return p.loc == nil }

// Daily reports whether p recurs every day.
func (p Peak) Daily() bool { return p.at.IsZero() && p.loc != nil }

// Next returns p's first occurrence strictly after t, or the zero time if
// there is none (a one-off peak that is past, or the zero Peak). A daily
// time a daylight-saving change skips falls as [time.Date] normalises it.
func (p Peak) Next(t time.Time) time.Time {
	switch {
	case p.loc == nil:
		return time.Time{}
	case !p.at.IsZero():
		if p.at.After(t) {
			return p.at
		}
		return time.Time{}
	}
	local := t.In(p.loc)
	y, m, d := local.Date()
	for i := range 3 { // today, tomorrow, and a spare for a skipped hour
		if n := time.Date(y, m, d+i, p.hour, p.minute, 0, 0, p.loc); n.After(t) {
			return n
		}
	}
	return time.Time{}
}

// String returns p in the form [ParsePeak] reads.
func (p Peak) String() string {
	switch {
	case p.loc == nil:
		return "(no peak)"
	case !p.at.IsZero():
		return p.at.Format(time.RFC3339)
	case p.loc == time.UTC:
		return fmt.Sprintf("%02d:%02d", p.hour, p.minute)
	}
	return fmt.Sprintf("%02d:%02d %s", p.hour, p.minute, p.loc)
}

// nextPeak returns the earliest occurrence of any of peaks strictly after
// t, or the zero time if none is left.
func nextPeak(peaks []Peak, t time.Time) time.Time {
	var next time.Time
	for _, p := range peaks {
		if n := p.Next(t); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return next
}

// peakLoop warms the hot set PeakLead before each occurrence of
// Config.Peaks, once per occurrence (peaks falling at the same instant
// share one warm-up). Started inside a lead (a peak less than PeakLead
// away), it warms at once. It ends with ctx, or when no peak is left.
func (c *Cache[V]) peakLoop(ctx context.Context) {
	from := c.ts.Now()
	for {
		peak := nextPeak(c.cfg.Peaks, from)
		if peak.IsZero() {
			return
		}
		if wait := peak.Add(-c.cfg.PeakLead).Sub(c.ts.Now()); wait > 0 {
			if !sleepOn(ctx, c.ts, wait, nil) {
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		n, err := c.WarmHot(ctx, c.cfg.WarmTopN, c.cfg.AutoWarm)
		c.ctr.scheduledWarmups.Add(1)
		c.cfg.Logger.Info("cache: a known peak is near; warmed the hot set", "namespace", c.cfg.Namespace, "peak", peak, "keys", n, "err", err)
		if c.cfg.onPeakWarm != nil {
			c.cfg.onPeakWarm(peak, n)
		}
		from = peak
	}
}
