package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// prometheusTimeout bounds the demo's one look at Prometheus: an address
// that does not answer must not hold the demo up.
const prometheusTimeout = 2 * time.Second

// promWatch is the demo's view of a Prometheus server: where it is, and
// the file_sd target file through which it scrapes each stage.
type promWatch struct {
	url     string // base URL; "" means none
	targets string // file_sd file; "" means none
	up      bool   // it answered /-/ready at the start
}

// announcePrometheus says where Prometheus is when the config names one:
// that it answers (and whether it scrapes the stages), or that it does
// not. A Prometheus that does not answer is no reason to stop the demo.
func (j *journey) announcePrometheus(ctx context.Context) {
	p := &j.prom
	p.url, p.targets = strings.TrimSuffix(j.cfg.Prometheus, "/"), j.cfg.PrometheusTargets
	if p.url == "" {
		return
	}
	if err := prometheusReady(ctx, p.url); err != nil {
		fmt.Fprintf(j.out, "Prometheus: %s does not answer (%v); `scripts/dev up` starts one\n\n", p.url, err)
		return
	}
	p.up = true
	if p.targets == "" {
		fmt.Fprintf(j.out, "Prometheus: %s (it scrapes `strata serve`, not the demo's stages; --prometheus-targets\n"+
			"names a file_sd file it reads, such as scripts/dev's $STRATA_DEV_DIR/prometheus/targets/demo.yml,\n"+
			"for it to scrape each stage while it runs)\n\n", p.url)
		return
	}
	fmt.Fprintf(j.out, "Prometheus: %s, scraping each stage while it runs (target file %s, label stage);\n"+
		"  e.g. sum by (stage) (rate(strata_http_requests_total[15s]))\n\n", p.url, p.targets)
}

// prometheusReady asks Prometheus whether it is ready.
func prometheusReady(ctx context.Context, base string) error {
	ctx, cancel := context.WithTimeout(ctx, prometheusTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/-/ready", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var ue *url.Error // repeats the URL
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /-/ready: %s", resp.Status)
	}
	return nil
}

// watchStage makes Prometheus scrape the stage at addr (host:port) from
// now on, labelled stage=short, by writing the target file (atomically:
// Prometheus must never read half a file). A failure is reported once
// and stops the watching; the demo goes on.
func (j *journey) watchStage(short, addr string) {
	p := &j.prom
	if !p.up || p.targets == "" {
		return
	}
	body, err := json.Marshal([]map[string]any{{
		"targets": []string{addr},
		"labels":  map[string]string{"stage": short, "source": "strata demo"},
	}})
	if err == nil {
		tmp := p.targets + ".tmp"
		if err = os.WriteFile(tmp, body, 0o644); err == nil {
			err = os.Rename(tmp, p.targets)
		}
	}
	if err != nil {
		fmt.Fprintf(j.out, "(Prometheus will not scrape the stages: %v)\n", err)
		p.targets = ""
	}
}

// unwatch removes the target file: the demo's stages are gone.
func (j *journey) unwatch() {
	p := &j.prom
	if !p.up || p.targets == "" {
		return
	}
	if err := os.Remove(p.targets); err != nil && !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(j.out, "(could not remove Prometheus's target file: %v)\n", err)
	}
	_ = os.Remove(filepath.Clean(p.targets) + ".tmp")
}
