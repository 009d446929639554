package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// maxConfigBytes bounds the config file 'strata serve' reads: a config is a
// handful of lines, and a huge file is a mistake to refuse, not to parse.
const maxConfigBytes = 1 << 20

// maxQuoted bounds how much of a user's value an error message repeats.
const maxQuoted = 64

// serveConfig is the YAML config file of 'strata serve'. Every key is
// optional and a flag given on the command line wins over the file. Later
// stages add their sections (cache, replicas, shards) here. Each set value
// remembers where it came from, so an error about it names the file and
// line rather than a flag the user never gave.
type serveConfig struct {
	DB       configValue[string]
	Replicas configValue[[]string]
	Shards   configValue[[]string]
	Addr     configValue[string]
	// Only runs one service alone ("recommendations"); RecommendationsURL
	// is the recommendation service the storefront calls instead.
	Only               configValue[string]
	RecommendationsURL configValue[string]
	Hedge              configValue[bool] // --hedge
	Cache              struct {
		Enabled   configValue[bool]
		Redis     configValue[string]
		WarmPeaks configValue[[]string] // known peaks to warm the cache ahead of (cache.ParsePeak)
		WarmLead  configValue[string]   // how long ahead (a Go duration)
	}
	Overload struct {
		Enabled     configValue[bool]
		SLA         configValue[string]  // a Go duration
		CapacityRPS configValue[float64] // requests per second
	}
	SearchTiers configValue[[]string] // the search tiers' resources (storefront.ParseSearchTiers)
	Tracing     struct {
		OTLPEndpoint configValue[string]  // --otlp-endpoint
		Sample       configValue[float64] // --trace-sample
		Slow         configValue[string]  // --trace-slow (a Go duration)
	}
}

// configValue is one value of the config file and where it was written.
type configValue[T any] struct {
	V   T
	Set bool
	At  string // "strata.yaml:3 (key cache.redis)"
}

// loadServeConfig reads a config file strictly: an unknown key, a value of
// the wrong type or a second document is an error naming the file, the
// line, the key and what was expected, in the user's terms.
func loadServeConfig(path string) (serveConfig, error) {
	var c serveConfig
	f, err := os.Open(path)
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	if len(data) > maxConfigBytes {
		return c, fmt.Errorf("config %s: larger than %d bytes; a config file is a few lines of YAML", path, maxConfigBytes)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return c, fmt.Errorf("config %s: not valid YAML: %s", path, bounded(strings.TrimPrefix(err.Error(), "yaml: ")))
	}
	if doc.Kind == 0 { // empty file: every default
		return c, nil
	}
	d := configDecoder{path: path}
	root := doc.Content[0]
	err = d.mapping(root, "", map[string]func(*yaml.Node, string) error{
		"db":       func(n *yaml.Node, key string) error { return d.str(n, key, &c.DB) },
		"addr":     func(n *yaml.Node, key string) error { return d.str(n, key, &c.Addr) },
		"replicas": func(n *yaml.Node, key string) error { return d.strs(n, key, &c.Replicas) },
		"shards":   func(n *yaml.Node, key string) error { return d.strs(n, key, &c.Shards) },
		"only":     func(n *yaml.Node, key string) error { return d.str(n, key, &c.Only) },
		"hedge":    func(n *yaml.Node, key string) error { return d.boolean(n, key, &c.Hedge) },
		"recommendations_url": func(n *yaml.Node, key string) error {
			return d.str(n, key, &c.RecommendationsURL)
		},
		"search_tiers": func(n *yaml.Node, key string) error { return d.strs(n, key, &c.SearchTiers) },
		"cache": func(n *yaml.Node, key string) error {
			return d.mapping(n, key, map[string]func(*yaml.Node, string) error{
				"enabled":    func(n *yaml.Node, key string) error { return d.boolean(n, key, &c.Cache.Enabled) },
				"redis":      func(n *yaml.Node, key string) error { return d.str(n, key, &c.Cache.Redis) },
				"warm_peaks": func(n *yaml.Node, key string) error { return d.strs(n, key, &c.Cache.WarmPeaks) },
				"warm_lead":  func(n *yaml.Node, key string) error { return d.str(n, key, &c.Cache.WarmLead) },
			})
		},
		"overload": func(n *yaml.Node, key string) error {
			return d.mapping(n, key, map[string]func(*yaml.Node, string) error{
				"enabled":      func(n *yaml.Node, key string) error { return d.boolean(n, key, &c.Overload.Enabled) },
				"sla":          func(n *yaml.Node, key string) error { return d.str(n, key, &c.Overload.SLA) },
				"capacity_rps": func(n *yaml.Node, key string) error { return d.number(n, key, &c.Overload.CapacityRPS) },
			})
		},
		"tracing": func(n *yaml.Node, key string) error {
			return d.mapping(n, key, map[string]func(*yaml.Node, string) error{
				"otlp_endpoint": func(n *yaml.Node, key string) error { return d.str(n, key, &c.Tracing.OTLPEndpoint) },
				"sample":        func(n *yaml.Node, key string) error { return d.number(n, key, &c.Tracing.Sample) },
				"slow":          func(n *yaml.Node, key string) error { return d.str(n, key, &c.Tracing.Slow) },
			})
		},
	})
	return c, err
}

// configDecoder walks the YAML tree of a config file.
type configDecoder struct{ path string }

func (d configDecoder) errorf(n *yaml.Node, key, format string, args ...any) error {
	where := fmt.Sprintf("config %s:%d", d.path, n.Line)
	if key != "" {
		where += ": " + key
	}
	return fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...))
}

func (d configDecoder) at(n *yaml.Node, key string) string {
	return fmt.Sprintf("%s:%d (key %s)", d.path, n.Line, key)
}

// mapping decodes a YAML mapping whose keys must be among fields.
func (d configDecoder) mapping(n *yaml.Node, key string, fields map[string]func(*yaml.Node, string) error) error {
	n = deref(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return d.errorf(n, key, "want a mapping with the keys %s, got %s", keyList(fields), describe(n))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		full := name
		if key != "" {
			full = key + "." + name
		}
		set, ok := fields[name]
		if !ok {
			return d.errorf(k, "", "unknown key %s (known here: %s)", quote(full), keyList(fields))
		}
		if seen[name] {
			return d.errorf(k, "", "key %s appears twice", full)
		}
		seen[name] = true
		if err := set(v, full); err != nil {
			return err
		}
	}
	return nil
}

func (d configDecoder) str(n *yaml.Node, key string, dst *configValue[string]) error {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!null") {
		return d.errorf(n, key, "want a string, got %s", describe(n))
	}
	if n.Tag == "!!null" {
		return nil
	}
	*dst = configValue[string]{V: n.Value, Set: true, At: d.at(n, key)}
	return nil
}

func (d configDecoder) strs(n *yaml.Node, key string, dst *configValue[[]string]) error {
	n = deref(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return d.errorf(n, key, "want a list of strings, got %s", describe(n))
	}
	var out []string
	for i, e := range n.Content {
		var v configValue[string]
		if err := d.str(e, fmt.Sprintf("%s[%d]", key, i), &v); err != nil {
			return err
		}
		if !v.Set {
			return d.errorf(e, fmt.Sprintf("%s[%d]", key, i), "want a string, got an empty value")
		}
		out = append(out, v.V)
	}
	*dst = configValue[[]string]{V: out, Set: len(out) > 0, At: d.at(n, key)}
	return nil
}

func (d configDecoder) boolean(n *yaml.Node, key string, dst *configValue[bool]) error {
	n = deref(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		return d.errorf(n, key, "want true or false, got %s", describe(n))
	}
	v, err := strconv.ParseBool(strings.ToLower(n.Value))
	if err != nil { // YAML 1.1 spellings such as "on" that yaml tags !!bool
		return d.errorf(n, key, "want true or false, got %s", quote(n.Value))
	}
	*dst = configValue[bool]{V: v, Set: true, At: d.at(n, key)}
	return nil
}

func (d configDecoder) number(n *yaml.Node, key string, dst *configValue[float64]) error {
	n = deref(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		return d.errorf(n, key, "want a number, got %s", describe(n))
	}
	v, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
	if err != nil { // YAML spellings such as .inf or 0x10 that Go does not read
		return d.errorf(n, key, "want a number, got %s", quote(n.Value))
	}
	*dst = configValue[float64]{V: v, Set: true, At: d.at(n, key)}
	return nil
}

// deref follows YAML aliases.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// describe says what a node is, in the user's words.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case "!!null":
		return "an empty value"
	case "!!bool":
		return "the boolean " + n.Value
	case "!!int", "!!float":
		return "the number " + quote(n.Value)
	}
	return "the string " + quote(n.Value)
}

func keyList(fields map[string]func(*yaml.Node, string) error) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, ", ")
}

// quote quotes s for an error message, cut to maxQuoted bytes (on a rune
// boundary) with its full length, so a huge value is never echoed whole.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(s[:cut]), len(s))
}

// bounded cuts a message that may repeat the user's input.
func bounded(msg string) string {
	const max = 200
	if len(msg) <= max {
		return msg
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}
