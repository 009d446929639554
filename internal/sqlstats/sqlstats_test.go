package sqlstats_test

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	_ "modernc.org/sqlite"

	"github.com/strata-dev/strata/internal/sqlstats"
)

func TestCollector(t *testing.T) {
	db, err := sql.Open("sqlite", t.TempDir()+"/x.db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(7)
	conn, err := db.Conn(t.Context()) // one connection in use
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	c := sqlstats.New(map[string]*sql.DB{"primary": db})
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
	want := `
# HELP strata_db_in_use_connections Connections in use.
# TYPE strata_db_in_use_connections gauge
strata_db_in_use_connections{pool="primary"} 1
# HELP strata_db_max_open_connections Maximum number of open connections the pool allows.
# TYPE strata_db_max_open_connections gauge
strata_db_max_open_connections{pool="primary"} 7
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "strata_db_in_use_connections", "strata_db_max_open_connections"); err != nil {
		t.Fatal(err)
	}
}
