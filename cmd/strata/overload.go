package main

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/strata-dev/strata/overload"
)

// overloadFlags are serve's overload control flags: --overload, --sla
// and --capacity-rps (config keys overload.enabled, overload.sla and
// overload.capacity_rps).
type overloadFlags struct {
	enabled  bool
	sla      string
	capacity float64
}

func (o *overloadFlags) flags(f *pflag.FlagSet) {
	f.BoolVar(&o.enabled, "overload", false, "put the adaptive concurrency limiter in front of the routes: shed sheddable work, then normal requests (503), critical reads last")
	f.StringVar(&o.sla, "sla", overload.DefaultTarget.String(), "with --overload: the p99 latency the limiter holds admitted requests within")
	f.Float64Var(&o.capacity, "capacity-rps", 0, "with --overload: the requests per second a load test found this instance breaks at; exports strata_overload_utilisation_ratio for an autoscaler")
}

// fromFile takes the config file's overload section where no flag was
// given.
func (o *overloadFlags) fromFile(cmd *cobra.Command, c serveConfig, where map[string]string) {
	if !cmd.Flags().Changed("overload") && c.Overload.Enabled.Set {
		o.enabled, where["overload"] = c.Overload.Enabled.V, "config "+c.Overload.Enabled.At
	}
	if !cmd.Flags().Changed("sla") && c.Overload.SLA.Set {
		o.sla, where["sla"] = c.Overload.SLA.V, "config "+c.Overload.SLA.At
	}
	if !cmd.Flags().Changed("capacity-rps") && c.Overload.CapacityRPS.Set {
		o.capacity, where["capacity-rps"] = c.Overload.CapacityRPS.V, "config "+c.Overload.CapacityRPS.At
	}
}

// config checks the flags and returns the limiter's Config, or nil when
// overload control is off; an error is a usage error naming the flag or
// config line.
func (o *overloadFlags) config(cmd *cobra.Command, where map[string]string) (*overload.Config, error) {
	sla, err := time.ParseDuration(o.sla)
	switch {
	case err != nil:
		return nil, usageError{fmt.Errorf("%s %s: not a duration (want for example 100ms)", where["sla"], quote(o.sla))}
	case sla <= 0:
		return nil, usageError{fmt.Errorf("%s %s: must be positive (the p99 latency admitted requests are held within)", where["sla"], quote(o.sla))}
	case o.capacity < 0 || math.IsNaN(o.capacity) || math.IsInf(o.capacity, 0):
		return nil, usageError{fmt.Errorf("%s %v: want a rate in requests per second (the breaking point a load test measured), or 0 for unknown", where["capacity-rps"], o.capacity)}
	}
	if !o.enabled {
		for _, name := range []string{"sla", "capacity-rps"} {
			if cmd.Flags().Changed(name) || where[name] != "--"+name {
				return nil, usageError{fmt.Errorf("%s: applies to overload control, which is off; add --overload (or overload.enabled: true)", where[name])}
			}
		}
		return nil, nil
	}
	return &overload.Config{Target: sla, CapacityRPS: o.capacity}, nil
}

// limiter checks the flags and returns serve's limiter, registered on
// reg, and how serve's log line describes it; no limiter when overload
// control is off.
func (o *overloadFlags) limiter(cmd *cobra.Command, where map[string]string, reg prometheus.Registerer) (*overload.Limiter, string, error) {
	cfg, err := o.config(cmd, where)
	if err != nil || cfg == nil {
		return nil, "off", err
	}
	cfg.Registerer = reg
	lim, err := overload.New(*cfg)
	if err != nil {
		return nil, "", err
	}
	return lim, fmt.Sprintf("on (SLA p99 < %v, capacity %s)", cfg.Target, capacityText(cfg.CapacityRPS)), nil
}

// capacityText describes the capacity for serve's log line.
func capacityText(rps float64) string {
	if rps == 0 {
		return "unknown, no utilisation"
	}
	return strconv.FormatFloat(rps, 'f', -1, 64) + " requests/s"
}
