package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/shard"
)

// defaultShardMapTimeout bounds strata shard map and locate.
const defaultShardMapTimeout = 30 * time.Second

// shardMapFlags are the flags of strata shard map and locate.
type shardMapFlags struct {
	db   string
	json bool
	key  int64
}

// mainDBHelp is the --db help of map and locate.
const mainDBHelp = "the main PostgreSQL database, which holds the shard map (postgres://USER@HOST:PORT/DB)"

func newShardMap(g *globals) *cobra.Command {
	f := &shardMapFlags{}
	cmd := &cobra.Command{
		Use:   "map",
		Short: "Print the shard map the control schema holds",
		Long: `Print the shard map of the control schema (strata_shard) in --db: its
epoch, and for each shard its name, its URL (password hidden) and the
virtual shards or key ranges it owns. --json prints it as JSON.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := f.load(cmd.Context())
			if err != nil {
				return err
			}
			if f.json {
				return writeMapJSON(g.stdout, m)
			}
			return writeMapText(g.stdout, m)
		},
	}
	cmd.Flags().StringVar(&f.db, "db", "", mainDBHelp)
	cmd.Flags().BoolVar(&f.json, "json", false, "print the map as JSON")
	return cmd
}

func newShardLocate(g *globals) *cobra.Command {
	f := &shardMapFlags{}
	cmd := &cobra.Command{
		Use:   "locate",
		Short: "Print the shard that owns a key",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("key") {
				return usageError{errors.New("--key is required: the key (a 64-bit integer, such as a user id) to locate")}
			}
			m, err := f.load(cmd.Context())
			if err != nil {
				return err
			}
			s := m.Shards[m.Owner(f.key)]
			where := ""
			if m.Kind == shard.KindHash {
				where = fmt.Sprintf("virtual shard %d of %d, ", shard.VirtualShard(f.key, len(m.Owners)), len(m.Owners))
			}
			_, err = fmt.Fprintf(g.stdout, "key %d: %son shard %s (%s), map epoch %d\n", f.key, where, s.Name, hidePasswords(s.URL), m.Epoch)
			return err
		},
	}
	cmd.Flags().StringVar(&f.db, "db", "", mainDBHelp)
	cmd.Flags().Int64Var(&f.key, "key", 0, "the key to locate (a 64-bit integer)")
	return cmd
}

// load reads the map from --db.
func (f *shardMapFlags) load(parent context.Context) (*shard.Map, error) {
	ctx, cancel := context.WithTimeout(parent, defaultShardMapTimeout)
	defer cancel()
	db, m, err := f.open(ctx)
	if err != nil {
		return nil, err
	}
	db.Close()
	return m, nil
}

// open connects to --db and loads the map from it, with errors that name
// what is wrong; the caller closes the database.
func (f *shardMapFlags) open(ctx context.Context) (*sql.DB, *shard.Map, error) {
	if f.db == "" {
		return nil, nil, usageError{errors.New("--db is required: " + mainDBHelp)}
	}
	u, err := postgresURL("--db", f.db, "the shard map lives in PostgreSQL")
	if err != nil {
		return nil, nil, usageError{err}
	}
	db, err := sql.Open("pgx", withConnectTimeout(u))
	if err != nil {
		return nil, nil, usageError{fmt.Errorf("--db %s: %s", quote(hidePasswords(f.db)), bounded(maskSettings(err.Error())))}
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("cannot reach the database at %s: %s", display(u), bounded(maskSettings(joinLines(err.Error()))))
	}
	m, err := shard.Load(ctx, db)
	if errors.Is(err, shard.ErrNoMap) {
		db.Close()
		return nil, nil, fmt.Errorf("no shard map in %s: none has been published to its %s schema", display(u), shard.ControlSchema)
	}
	if err != nil {
		db.Close()
		return nil, nil, errors.New(cleanError(err))
	}
	return db, m, nil
}

// mapJSON is the map as strata shard map --json prints it.
type mapJSON struct {
	Epoch  int64       `json:"epoch"`
	Kind   string      `json:"kind"`
	Shards []shardJSON `json:"shards"`
}

// shardJSON is one shard of mapJSON.
type shardJSON struct {
	Name     string   `json:"name"`
	URL      string   `json:"url"` // password hidden
	Replicas []string `json:"replicas,omitempty"`
	// VirtualShards are the runs [first, last] of the virtual shards it
	// owns (a hash map); Ranges its key ranges (a range map).
	VirtualShards [][2]int      `json:"virtual_shards,omitempty"`
	Ranges        []shard.Range `json:"ranges,omitempty"`
}

func mapView(m *shard.Map) mapJSON {
	out := mapJSON{Epoch: m.Epoch, Kind: m.Kind}
	for i, s := range m.Shards {
		sj := shardJSON{Name: s.Name, URL: hidePasswords(s.URL)}
		for _, r := range s.Replicas {
			sj.Replicas = append(sj.Replicas, hidePasswords(r))
		}
		for v, owner := range m.Owners {
			if owner != i {
				continue
			}
			if n := len(sj.VirtualShards); n > 0 && sj.VirtualShards[n-1][1] == v-1 {
				sj.VirtualShards[n-1][1] = v
			} else {
				sj.VirtualShards = append(sj.VirtualShards, [2]int{v, v})
			}
		}
		for _, r := range m.Ranges {
			if r.Owner == i {
				sj.Ranges = append(sj.Ranges, r)
			}
		}
		out.Shards = append(out.Shards, sj)
	}
	return out
}

func writeMapJSON(w io.Writer, m *shard.Map) error {
	b, err := json.MarshalIndent(mapView(m), "", "  ")
	if err != nil {
		return fmt.Errorf("shard map: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func writeMapText(w io.Writer, m *shard.Map) error {
	v := mapView(m)
	over := ""
	if v.Kind == shard.KindHash {
		over = fmt.Sprintf(" over %d virtual shards", len(m.Owners))
	}
	fmt.Fprintf(w, "shard map, epoch %d, %s%s\n", v.Epoch, v.Kind, over)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tURL\tOWNS")
	for _, s := range v.Shards {
		var owns []string
		for _, r := range s.VirtualShards {
			owns = append(owns, fmt.Sprintf("%d-%d", r[0], r[1]))
		}
		for _, r := range s.Ranges {
			owns = append(owns, fmt.Sprintf("[%d, %d)", r.Lo, r.Hi))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, s.URL, strings.Join(owns, ", "))
	}
	return tw.Flush()
}
