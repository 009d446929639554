package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/strata-dev/strata/tracing"
)

// traceShutdownTimeout bounds how long serve spends exporting the spans it
// kept when it stops.
const traceShutdownTimeout = 5 * time.Second

// traceFlags are serve's tracing flags (and config keys).
type traceFlags struct {
	endpoint, sample, slow string
}

// add defines the flags on fs.
func (f *traceFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.endpoint, "otlp-endpoint", "", "export traces over OTLP/HTTP to this collector, http://HOST:PORT (spans go to its /v1/traces); default $"+tracing.EnvEndpoint+"; none: tracing off")
	fs.StringVar(&f.sample, "trace-sample", strconv.FormatFloat(tracing.DefaultSampleRatio, 'g', -1, 64), "with --otlp-endpoint, the share of requests traced whatever their duration, 0 to 1 (slow and failed ones are traced anyway)")
	fs.StringVar(&f.slow, "trace-slow", tracing.DefaultSlowThreshold.String(), "with --otlp-endpoint, a request slower than this is always traced (the p99 target)")
}

// fromFile takes the config file's tracing keys for the flags not given.
func (f *traceFlags) fromFile(cmd *cobra.Command, c serveConfig, where map[string]string) {
	sample := configValue[string]{Set: c.Tracing.Sample.Set, At: c.Tracing.Sample.At, V: strconv.FormatFloat(c.Tracing.Sample.V, 'g', -1, 64)}
	for _, v := range []struct {
		flag string
		val  configValue[string]
		dst  *string
	}{{"otlp-endpoint", c.Tracing.OTLPEndpoint, &f.endpoint}, {"trace-sample", sample, &f.sample}, {"trace-slow", c.Tracing.Slow, &f.slow}} {
		if !cmd.Flags().Changed(v.flag) && v.val.Set {
			*v.dst, where[v.flag] = v.val.V, "config "+v.val.At
		}
	}
}

// open builds the tracing provider the flags describe (off without an
// endpoint) and registers its metrics on reg, which has them in every
// configuration (at 0 while tracing is off). Bad values are usage errors
// naming the flag, config line or variable that holds them.
func (f *traceFlags) open(ctx context.Context, cmd *cobra.Command, reg prometheus.Registerer, log *slog.Logger, where map[string]string) (*tracing.Provider, error) {
	cfg, err := f.config(cmd, where)
	if err != nil {
		return nil, usageError{err}
	}
	cfg.Logger = log
	p, err := tracing.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := reg.Register(p.Collector()); err != nil {
		return nil, fmt.Errorf("register the tracing metrics: %w", err)
	}
	if p.On() {
		log.Info("tracing", "otlp_endpoint", cfg.Endpoint, "sample", f.sample, "slow", cfg.SlowThreshold)
	}
	return p, nil
}

// config turns the flags into a tracing.Config.
func (f *traceFlags) config(cmd *cobra.Command, where map[string]string) (tracing.Config, error) {
	for _, k := range []string{"otlp-endpoint", "trace-sample", "trace-slow"} {
		if where[k] == "" {
			where[k] = "--" + k
		}
	}
	if f.endpoint == "" && !cmd.Flags().Changed("otlp-endpoint") {
		if v := os.Getenv(tracing.EnvEndpoint); v != "" {
			f.endpoint, where["otlp-endpoint"] = v, tracing.EnvEndpoint
		}
	}
	ratio, err := strconv.ParseFloat(f.sample, 64)
	if err != nil || math.IsNaN(ratio) || ratio < 0 || ratio > 1 {
		return tracing.Config{}, fmt.Errorf("%s %s: want a share from 0 to 1 (0.01: one request in a hundred)", where["trace-sample"], quote(f.sample))
	}
	slow, err := time.ParseDuration(f.slow)
	if err != nil || slow <= 0 {
		return tracing.Config{}, fmt.Errorf("%s %s: want a positive duration (for example 100ms)", where["trace-slow"], quote(f.slow))
	}
	if f.endpoint == "" {
		for _, k := range []string{"trace-sample", "trace-slow"} {
			if where[k] != "--"+k || cmd.Flags().Changed(k) {
				return tracing.Config{}, fmt.Errorf("%s: traces are exported only to an OTLP collector; add --otlp-endpoint (or set %s)", where[k], tracing.EnvEndpoint)
			}
		}
		return tracing.Config{}, nil
	}
	if _, err := tracing.ParseEndpoint(f.endpoint); err != nil {
		return tracing.Config{}, fmt.Errorf("%s %s: %w", where["otlp-endpoint"], quote(hidePasswords(f.endpoint)), err)
	}
	if ratio == 0 {
		ratio = -1 // tracing.Config: negative is none, 0 the default
	}
	return tracing.Config{Endpoint: f.endpoint, SampleRatio: ratio, SlowThreshold: slow}, nil
}

// shutdownTracing exports what p kept, within traceShutdownTimeout.
func shutdownTracing(p *tracing.Provider, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), traceShutdownTimeout)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		log.Warn("tracing: the last spans were not exported", "err", err)
	}
}
