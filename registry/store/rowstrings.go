package store

import (
	"bytes"
	"fmt"
	"unsafe"

	"github.com/jackc/pgx/v5"
)

// rowStrings makes the strings of a query's rows: a 4-hour exam's media are
// 7 200 rows with a dozen text columns each, and a string allocated per
// column and row was a third of the Go side of those queries
// (BenchmarkSegmentIndex). A value equal to the same column's in the
// previous row is that string again (stream, site, device, init segment,
// ingest node repeat down a stream's rows); the others are copied into
// chunks of chunkSize bytes, each string a slice of a chunk. A chunk is
// never written again where a string points, so the strings are immutable
// as Go requires; it is freed with the last string into it, so a result
// kept long keeps its chunks (at most chunkSize more than its strings).
type rowStrings struct {
	chunk []byte
	prev  []string // each column's previous value
}

const rowStringsChunk = 16 << 10

func newRowStrings(columns int) *rowStrings {
	return &rowStrings{prev: make([]string, columns)}
}

// get returns column col's value b, which points into the connection's
// buffer until the next row, as a string of its own.
func (a *rowStrings) get(col int, b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if string(b) == a.prev[col] { // compared without a copy
		return a.prev[col]
	}
	s := a.copy(b)
	a.prev[col] = s
	return s
}

func (a *rowStrings) copy(b []byte) string {
	if len(b) > rowStringsChunk/4 {
		return string(b)
	}
	if cap(a.chunk)-len(a.chunk) < len(b) {
		a.chunk = make([]byte, 0, rowStringsChunk)
	}
	n := len(a.chunk)
	a.chunk = append(a.chunk, b...)
	return unsafe.String(&a.chunk[n], len(b)) //nolint:gosec // audited: those bytes of the chunk are never written again (see rowStrings)
}

// appendString makes a string of what fill appends to its argument, about
// n bytes, written straight into a chunk (a hash's hex, a derived key)
// rather than built elsewhere and copied. fill must only append.
func (a *rowStrings) appendString(n int, fill func([]byte) []byte) string {
	if cap(a.chunk)-len(a.chunk) < n {
		a.chunk = make([]byte, 0, max(rowStringsChunk, n))
	}
	start := len(a.chunk)
	a.chunk = fill(a.chunk)
	// Had fill outgrown the chunk, append moved it: the strings made
	// before still point into the old one, which nothing writes again.
	return unsafe.String(unsafe.SliceData(a.chunk[start:]), len(a.chunk)-start) //nolint:gosec // audited: as copy
}

// textArray decodes column col of rows, a text[] whose raw value is b, into
// a []string, which is the previous row's slice again when the bytes are
// the same (a stream's codecs rarely change). Callers must not modify it.
type textArray struct {
	prevRaw []byte
	prev    []string
}

func (t *textArray) get(rows pgx.Rows, col int, b []byte) ([]string, error) {
	if t.prev != nil && bytes.Equal(t.prevRaw, b) {
		return t.prev, nil
	}
	fd := rows.FieldDescriptions()[col]
	var out []string
	if err := rows.Conn().TypeMap().Scan(fd.DataTypeOID, fd.Format, b, &out); err != nil {
		return nil, fmt.Errorf("column %s: %w", fd.Name, err)
	}
	if out == nil {
		out = []string{}
	}
	t.prevRaw = append(t.prevRaw[:0], b...)
	t.prev = out
	return out, nil
}
