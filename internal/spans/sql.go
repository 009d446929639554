package spans

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-dev/strata/internal/sqltext"
)

// MaxStatement bounds the statement text of an SQL span (db.query.text).
const MaxStatement = 300

// Scope is the instrumentation scope of the SQL spans.
const Scope = "github.com/strata-dev/strata/sql"

// RowsAffected is the attribute of the rows an INSERT, UPDATE or DELETE
// changed (semantic conventions name only the rows a query returns).
const RowsAffected = attribute.Key("strata.sql.rows_affected")

// SQL returns the pgx query tracer (pgx.ConnConfig.Tracer) that makes a
// client span of each statement run under a span: named by its operation
// (SELECT, INSERT, ...), with db.system.name, db.namespace,
// server.address and server.port, the statement normalised by
// sqltext.Normalize (constants replaced, cut to MaxStatement) as
// db.query.text, never its arguments, and the rows it returned
// (db.response.returned_rows) or changed (strata.sql.rows_affected). It
// returns nil when tp is off: set no tracer at all then.
//
// pgx's tracer hook, rather than a database/sql driver wrapper, because
// it sees the command tag (the row count) and ends a query's span when
// its rows are closed, not when the first row arrives.
func SQL(tp trace.TracerProvider) pgx.QueryTracer {
	t := New(tp, Scope)
	if !t.On() {
		return nil
	}
	return sqlTracer{t}
}

type sqlTracer struct{ t Tracer }

// sqlSpanKey holds the span TraceQueryStart started, so that
// TraceQueryEnd never ends a span it did not start.
type sqlSpanKey struct{}

func (s sqlTracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	op := strings.ToUpper(sqltext.Keyword(data.SQL))
	name := op
	if name == "" {
		name = "SQL"
	}
	attrs := []attribute.KeyValue{
		semconv.DBSystemNamePostgreSQL,
		semconv.DBQueryText(sqltext.Normalize(data.SQL, MaxStatement)),
	}
	if op != "" {
		attrs = append(attrs, semconv.DBOperationName(op))
	}
	if conn != nil {
		cfg := conn.Config()
		attrs = append(attrs, semconv.DBNamespace(cfg.Database), semconv.ServerAddress(cfg.Host), semconv.ServerPort(int(cfg.Port)))
	}
	ctx, span := s.t.t.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return context.WithValue(ctx, sqlSpanKey{}, span)
}

func (s sqlTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	span, ok := ctx.Value(sqlSpanKey{}).(trace.Span)
	if !ok {
		return
	}
	if data.Err == nil {
		switch tag := data.CommandTag; {
		case tag.Select():
			span.SetAttributes(semconv.DBResponseReturnedRows(int(tag.RowsAffected())))
		case tag.Insert(), tag.Update(), tag.Delete():
			span.SetAttributes(RowsAffected.Int64(tag.RowsAffected()))
		}
	}
	End(span, data.Err)
}
