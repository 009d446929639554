package spans

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/strata-dev/strata/internal/testdb"
)

func recorder() (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)), rec
}

// TestOffAndChildOnly: nil and the noop provider are off (no span, the
// context as it was); on, a span starts only under a span already in the
// context; Carry moves that span onto a detached context.
func TestOffAndChildOnly(t *testing.T) {
	bg := context.Background()
	for name, tp := range map[string]trace.TracerProvider{"nil": nil, "noop": noop.NewTracerProvider()} {
		tr := New(tp, "test")
		if tr.On() {
			t.Errorf("%s provider: On", name)
		}
		if ctx, s := tr.Start(bg, "x"); ctx != bg || s.IsRecording() {
			t.Errorf("%s provider: Start made a span", name)
		}
		if tr.Carry(bg, bg) != bg {
			t.Errorf("%s provider: Carry changed the context", name)
		}
		if SQL(tp) != nil {
			t.Errorf("%s provider: an SQL tracer", name)
		}
	}
	tp, rec := recorder()
	tr := New(tp, "test")
	if ctx, s := tr.Start(bg, "root?"); ctx != bg || s.IsRecording() {
		t.Fatal("a span without a parent")
	}
	parent, root := tp.Tracer("test").Start(bg, "request")
	ctx, child := tr.Start(parent, "child", attribute.String("k", "v"))
	detached := tr.Carry(context.WithoutCancel(bg), ctx)
	_, grandchild := tr.Start(detached, "grandchild")
	grandchild.End()
	child.End()
	root.End()
	got := rec.Ended()
	if len(got) != 3 || got[1].Parent().SpanID() != root.SpanContext().SpanID() || got[0].Parent().SpanID() != child.SpanContext().SpanID() {
		t.Fatalf("spans %v: want grandchild under child under request", got)
	}
}

// TestEndHidesValues: a database error is described by its SQLSTATE
// alone, as PostgreSQL's message may quote a value; others by their text.
func TestEndHidesValues(t *testing.T) {
	tp, rec := recorder()
	ctx, root := tp.Tracer("test").Start(context.Background(), "request")
	tr := New(tp, "test")
	_, a := tr.Start(ctx, "a")
	End(a, fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "22P02", Message: `invalid input syntax for type bigint: "s3cret"`}))
	_, b := tr.Start(ctx, "b")
	End(b, errors.New("connection refused"))
	root.End()
	got := rec.Ended()
	if st := got[0].Status(); st.Code != codes.Error || st.Description != "SQLSTATE 22P02" {
		t.Errorf("database error: status %+v, want SQLSTATE 22P02 alone", st)
	}
	if st := got[1].Status(); st.Code != codes.Error || st.Description != "connection refused" {
		t.Errorf("other error: status %+v", st)
	}
}

// TestSQL: on PostgreSQL, each statement under a span is a client span
// with the normalised text and never its arguments, the rows it returned
// or changed, and the SQLSTATE of a failure; without a span, none.
func TestSQL(t *testing.T) {
	tp, rec := recorder()
	cfg, err := pgx.ParseConfig(testdb.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Tracer = SQL(tp)
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	bg := context.Background()
	const secret = "s3cret-value"
	if _, err := db.ExecContext(bg, "CREATE TABLE notes (id int, body text)"); err != nil { // no span: no parent
		t.Fatal(err)
	}
	ctx, root := tp.Tracer("test").Start(bg, "request")
	if _, err := db.ExecContext(ctx, "INSERT INTO notes VALUES (1, $1), (2, $1)", secret); err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, "SELECT id\n  FROM notes WHERE body = $1 AND id < 10", secret)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
	}
	rows.Close()
	var n int64
	err = db.QueryRowContext(ctx, "SELECT $1::bigint", secret).Scan(&n)
	if err == nil {
		t.Fatal("a bigint from text: no error")
	}
	root.End()
	checkSQLSpans(t, rec.Ended(), root.SpanContext().SpanID(), secret)
}

// checkSQLSpans checks TestSQL's spans.
func checkSQLSpans(t *testing.T, got []sdktrace.ReadOnlySpan, root trace.SpanID, secret string) {
	t.Helper()
	want := []struct {
		name, text string
		count      attribute.KeyValue
		failed     bool
	}{
		{"INSERT", "INSERT INTO notes VALUES (?, $1), (?, $1)", RowsAffected.Int64(2), false},
		{"SELECT", "SELECT id FROM notes WHERE body = $1 AND id < ?", attribute.Int("db.response.returned_rows", 2), false},
		{"SELECT", "SELECT $1::bigint", attribute.KeyValue{}, true},
	}
	if len(got) != len(want)+1 {
		t.Fatalf("%d spans, want %d statements and the request (none for the statement without a parent)", len(got), len(want))
	}
	for i, w := range want {
		s := got[i]
		attrs := map[attribute.Key]attribute.Value{}
		for _, a := range s.Attributes() {
			attrs[a.Key] = a.Value
			if strings.Contains(a.Value.String(), secret) {
				t.Errorf("%s: attribute %s shows the argument: %s", s.Name(), a.Key, a.Value.String())
			}
		}
		switch {
		case s.Name() != w.name || s.Parent().SpanID() != root || s.SpanKind() != trace.SpanKindClient:
			t.Errorf("span %d: %s (kind %v) under %s, want %s under the request", i, s.Name(), s.SpanKind(), s.Parent().SpanID(), w.name)
		case attrs["db.system.name"].AsString() != "postgresql" || attrs["db.query.text"].AsString() != w.text:
			t.Errorf("%s: db.system.name %q, db.query.text %q; want postgresql, %q", s.Name(), attrs["db.system.name"].String(), attrs["db.query.text"].String(), w.text)
		case w.failed && (s.Status().Description != "SQLSTATE 22P02" || strings.Contains(fmt.Sprint(s.Events()), secret)):
			t.Errorf("%s: status %+v, events %v; want SQLSTATE 22P02 and no value", s.Name(), s.Status(), s.Events())
		case !w.failed && attrs[w.count.Key] != w.count.Value:
			t.Errorf("%s: %s = %s, want %s", s.Name(), w.count.Key, attrs[w.count.Key].String(), w.count.Value.String())
		}
	}
}
