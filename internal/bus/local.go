package bus

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nokstream/nokstream/internal/atomicfile"
)

// Local is the in-process bus of single-machine mode.
//
// With a directory it is durable: each topic is an append-only log file,
// fsync'd before Publish returns, and each group's committed offset is a small
// file replaced atomically (write temp, fsync, rename). After a crash or a
// restart, consumers resume after the last committed message and nothing
// published is lost. Without a directory everything is in memory.
//
// On disk:
//
//	<dir>/LOCK                         held (flock) while a process uses dir
//	<dir>/<topic>/records.log          the topic's records, see encodeRecord
//	<dir>/<topic>/groups/<group>.json  {"next": N}: the group's next offset
//
// A topic has one partition, so a group handles its messages one at a time,
// in publish order. Every group sees every message. Records are never
// deleted: the log of a topic grows for as long as the directory is kept.
type Local struct {
	dir  string
	log  *slog.Logger
	m    *Metrics
	lock *os.File
	done chan struct{} // closed by Close

	mu     sync.Mutex
	closed bool
	topics map[string]*topicLog
}

var _ Bus = (*Local)(nil)

var errClosed = errors.New("bus closed")

// NewLocal returns an in-process bus that keeps its topics in dir, or in
// memory only if dir is "". It opens the topics already in dir, dropping a
// record torn by a crash at the end of a log; it returns an error if a log is
// damaged anywhere else, rather than lose the records after the damage. log and
// m may be nil.
func NewLocal(dir string, log *slog.Logger, m *Metrics) (*Local, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Local{dir: dir, log: log, m: m, done: make(chan struct{}), topics: map[string]*topicLog{}}
	if dir == "" {
		return l, nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create bus dir: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	l.lock = lock
	entries, err := os.ReadDir(dir)
	if err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("list bus dir: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || checkName("topic", e.Name()) != nil {
			continue
		}
		if _, err := l.topic(e.Name()); err != nil {
			_ = l.Close()
			return nil, err
		}
	}
	return l, nil
}

// Publish appends an event to topic and returns once it is durable.
func (l *Local) Publish(ctx context.Context, topic, key string, value []byte) error {
	return l.publish(ctx, topic, record{key: key, value: value})
}

func (l *Local) publish(ctx context.Context, topic string, r record) error {
	start := time.Now()
	err := l.append(ctx, topic, r)
	l.m.publishDone(topic, time.Since(start), err)
	if err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

func (l *Local) append(ctx context.Context, topic string, r record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := l.topic(topic)
	if err != nil {
		return err
	}
	r.time = time.Now()
	return t.append(r)
}

// Consume handles the messages of topic in group, in publish order, until ctx
// ends. Only one Consume of a group runs at a time: a second one waits, as a
// standby, until the first returns.
func (l *Local) Consume(ctx context.Context, topic, group string, h Handler) error {
	return l.run(ctx, topic, group, func(t *topicLog, g *groupState) error {
		return l.consume(ctx, t, g, topic, group, h)
	})
}

// ConsumeBatch is Consume handing h batches: up to o.Max messages, or what
// was published within o.Linger of the first, in publish order. The batch is
// committed, as one offset, once h handled all of it.
func (l *Local) ConsumeBatch(ctx context.Context, topic, group string, o BatchOptions, h BatchHandler) error {
	o, err := o.withDefaults()
	if err != nil {
		return fmt.Errorf("consume %s: %w", topic, err)
	}
	return l.run(ctx, topic, group, func(t *topicLog, g *groupState) error {
		return l.consumeBatch(ctx, t, g, topic, group, o, h)
	})
}

// run opens the topic and group and runs consume while holding the group's
// lease.
func (l *Local) run(ctx context.Context, topic, group string, consume func(*topicLog, *groupState) error) error {
	if err := checkName("group", group); err != nil {
		return fmt.Errorf("consume %s: %w", topic, err)
	}
	t, err := l.topic(topic)
	if err != nil {
		return fmt.Errorf("consume %s: %w", topic, err)
	}
	g, err := t.group(group)
	if err != nil {
		return fmt.Errorf("consume %s: %w", topic, err)
	}
	select {
	case g.lease <- struct{}{}:
	case <-ctx.Done():
		return nil
	case <-l.done:
		return fmt.Errorf("consume %s: %w", topic, errClosed)
	}
	defer func() { <-g.lease }()
	return consume(t, g)
}

func (l *Local) consumeBatch(ctx context.Context, t *topicLog, g *groupState, topic, group string, o BatchOptions, h BatchHandler) error {
	ms := make([]Message, 0, o.Max)
	for {
		if err := t.wait(ctx, l.done, g.next); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consume %s: %w", topic, err)
		}
		// Wait for more, unless the batch is already full.
		if o.Linger > 0 && t.visibleCount()-g.next < int64(o.Max) {
			lctx, cancel := context.WithTimeout(ctx, o.Linger)
			err := t.wait(lctx, l.done, g.next+int64(o.Max)-1)
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, errClosed) {
				return fmt.Errorf("consume %s: %w", topic, err)
			}
		}
		end := min(t.visibleCount(), g.next+int64(o.Max))
		ms = ms[:0]
		for off := g.next; off < end; off++ {
			r, err := t.read(off)
			if err != nil {
				return fmt.Errorf("consume %s: %w", topic, err)
			}
			ms = append(ms, Message{Topic: topic, Key: r.key, Value: r.value, Offset: off, Time: r.time, Headers: r.headers})
		}
		if !deliverBatch(ctx, l.log, l.m, group, ms, h, l.deadLetter) {
			return nil
		}
		if err := t.commit(g, end); err != nil {
			// Handled but not committed on disk: delivered again
			// after a restart, which idempotent handlers allow.
			l.log.Error("commit offset", "topic", topic, "group", group, "offset", end-1, "err", err)
		}
	}
}

func (l *Local) consume(ctx context.Context, t *topicLog, g *groupState, topic, group string, h Handler) error {
	for {
		if err := t.wait(ctx, l.done, g.next); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consume %s: %w", topic, err)
		}
		r, err := t.read(g.next)
		if err != nil {
			return fmt.Errorf("consume %s: %w", topic, err)
		}
		m := Message{Topic: topic, Key: r.key, Value: r.value, Offset: g.next, Time: r.time, Headers: r.headers}
		if !deliver(ctx, l.log, l.m, group, m, h, l.deadLetter) {
			return nil
		}
		if err := t.commit(g, g.next+1); err != nil {
			// The message is handled but its commit is not on disk:
			// after a restart it is delivered again, which idempotent
			// handlers allow. Stopping here would stall the pipeline.
			l.log.Error("commit offset", "topic", topic, "group", group, "offset", g.next-1, "err", err)
		}
	}
}

func (l *Local) deadLetter(ctx context.Context, m Message, group string, cause error) error {
	return l.publish(ctx, DeadLetterTopic(m.Topic), record{key: m.Key, value: m.Value, headers: map[string]string{
		HeaderError:     cause.Error(),
		HeaderTopic:     m.Topic,
		HeaderGroup:     group,
		HeaderPartition: strconv.Itoa(m.Partition),
		HeaderOffset:    strconv.FormatInt(m.Offset, 10),
	}})
}

// Close closes the topic logs and releases the directory. Consumers still
// running return an error; Publish after Close returns an error.
func (l *Local) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	topics := slices.Collect(maps.Values(l.topics))
	l.mu.Unlock()

	var errs []error
	for _, t := range topics {
		errs = append(errs, t.close())
	}
	if l.lock != nil {
		// Closing the file releases the flock.
		errs = append(errs, l.lock.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close bus: %w", err)
	}
	return nil
}

// topic returns the open log of name, opening or creating it.
func (l *Local) topic(name string) (*topicLog, error) {
	if err := checkName("topic", name); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errClosed
	}
	if t, ok := l.topics[name]; ok {
		return t, nil
	}
	t, err := openTopic(l.dir, name, l.log)
	if err != nil {
		return nil, err
	}
	l.topics[name] = t
	return t, nil
}

// record is one event in a topic log.
type record struct {
	key     string
	value   []byte
	headers map[string]string
	time    time.Time
}

// topicLog is one topic: its records, in a file or in memory, and its
// groups.
type topicLog struct {
	name string
	dir  string // "" in memory
	log  *slog.Logger
	f    *os.File
	crc  *crc32.Table

	// writeMu serialises appends, each written and fsync'd whole. pos
	// and size change only under both writeMu and mu.
	writeMu sync.Mutex

	mu      sync.Mutex
	pos     []int64  // file: where record i starts
	size    int64    // file: bytes in the log
	mem     []record // memory: the records
	visible int64    // records durable, and so visible to consumers
	changed chan struct{}
	err     error // set once the log can take no more records
	groups  map[string]*group
}

// group is the committed position of one consumer group on a topic.
// groupState is group, named where a parameter called group hides the type.
type groupState = group

type group struct {
	name  string
	lease chan struct{} // held by the running Consume
	next  int64         // next offset to handle; owned by the lease holder
}

const (
	logFile   = "records.log"
	groupsDir = "groups"
	// headerLen is the length and CRC before each record body.
	headerLen = 8
	// maxBody bounds a record, so a damaged length is not taken for a
	// huge record.
	maxBody       = 16 << 20
	recordVersion = 1
)

func openTopic(dir, name string, log *slog.Logger) (*topicLog, error) {
	t := &topicLog{
		name: name, dir: dir, log: log,
		crc:     crc32.MakeTable(crc32.Castagnoli),
		changed: make(chan struct{}),
		groups:  map[string]*group{},
	}
	if dir == "" {
		return t, nil
	}
	tdir := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Join(tdir, groupsDir), 0o750); err != nil {
		return nil, fmt.Errorf("create topic dir %s: %w", name, err)
	}
	path := filepath.Join(tdir, logFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open topic log %s: %w", name, err)
	}
	t.f = f
	if err := t.recover(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("open topic log %s: %w", name, err)
	}
	// Make the directory entries of a new topic durable.
	for _, d := range []string{dir, tdir} {
		if err := atomicfile.SyncDir(d); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("open topic log %s: %w", name, err)
		}
	}
	t.visible = int64(len(t.pos))
	return t, nil
}

// recover indexes the records in the log file. A record torn by a crash in
// the middle of an append can only be the last one (see append), so a bad record that reaches the end of the file is cut
// off. A bad record with more data after it is damage, not a torn append:
// that is an error, so that no good record after it is thrown away.
func (t *topicLog) recover() error {
	st, err := t.f.Stat()
	if err != nil {
		return err
	}
	fileSize := st.Size()
	br := bufio.NewReaderSize(io.NewSectionReader(t.f, 0, fileSize), 1<<20)
	var (
		off  int64
		hdr  [headerLen]byte
		body []byte
	)
	for off < fileSize {
		bad := ""
		n := int64(0)
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			bad = "incomplete header"
		} else {
			n = int64(binary.BigEndian.Uint32(hdr[0:4]))
			switch {
			case n == 0 || n > maxBody:
				bad = fmt.Sprintf("bad length %d", n)
			case off+headerLen+n > fileSize:
				bad = "incomplete record"
			default:
				body = slices.Grow(body[:0], int(n))[:n]
				if _, err := io.ReadFull(br, body); err != nil {
					return fmt.Errorf("read record at byte %d: %w", off, err)
				}
				if crc32.Checksum(body, t.crc) != binary.BigEndian.Uint32(hdr[4:8]) {
					bad = "checksum mismatch"
				} else if _, err := decodeBody(body); err != nil {
					bad = err.Error()
				}
			}
		}
		if bad == "" {
			t.pos = append(t.pos, off)
			off += headerLen + n
			continue
		}
		torn, err := t.tornTail(off, n, fileSize)
		if err != nil {
			return err
		}
		if !torn {
			return fmt.Errorf("record %d at byte %d: %s, and the log goes on for %d bytes: damaged, not torn by a crash; move the file aside to start the topic afresh",
				len(t.pos), off, bad, fileSize-off)
		}
		t.log.Warn("dropping torn record at end of topic log", "topic", t.name, "offset", len(t.pos),
			"byte", off, "bytes", fileSize-off, "reason", bad)
		if err := t.f.Truncate(off); err != nil {
			return fmt.Errorf("truncate torn record: %w", err)
		}
		if err := t.f.Sync(); err != nil {
			return fmt.Errorf("sync after truncate: %w", err)
		}
		break
	}
	t.size = off
	return nil
}

// tornTail reports whether a bad record at off, of claimed body length n, is
// the remains of an interrupted append: it claims to reach the end of the
// file, or everything from off on is zeros (file size extended, data never
// written).
func (t *topicLog) tornTail(off, n, fileSize int64) (bool, error) {
	if n <= maxBody && off+headerLen+n >= fileSize {
		return true, nil
	}
	buf := make([]byte, 64<<10)
	for p := off; p < fileSize; {
		k, err := t.f.ReadAt(buf[:min(int64(len(buf)), fileSize-p)], p)
		if err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("read tail: %w", err)
		}
		for _, b := range buf[:k] {
			if b != 0 {
				return false, nil
			}
		}
		p += int64(k)
		if k == 0 {
			break
		}
	}
	return true, nil
}

// append adds r to the log and returns once it is durable and visible.
//
// Appends are written and fsync'd one at a time, so after a crash only the
// last record can be torn, which is what recover relies on. Batching several
// publishers into one fsync would need the batch framed as one unit (as Kafka
// does) to keep that property.
func (t *topicLog) append(r record) error {
	if len(r.value) > maxBody/2 {
		return fmt.Errorf("event of %d bytes is too large", len(r.value))
	}
	if t.f == nil {
		r.value = bytes.Clone(r.value)
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.err != nil {
			return t.err
		}
		t.mem = append(t.mem, r)
		t.visible = int64(len(t.mem))
		t.wake()
		return nil
	}

	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	t.mu.Lock()
	err, at := t.err, t.size
	t.mu.Unlock()
	if err != nil {
		return err
	}
	buf := encodeRecord(t.crc, r)
	if _, err := t.f.WriteAt(buf, at); err != nil {
		// Cut off a partial write, or the next record would land
		// after garbage in the middle of the log.
		if terr := t.f.Truncate(at); terr != nil {
			t.fail(fmt.Errorf("topic log %s unusable: truncate after failed write: %w", t.name, terr))
		}
		return fmt.Errorf("write topic log: %w", err)
	}
	if err := t.f.Sync(); err != nil {
		// After a failed fsync the kernel may have dropped the dirty
		// pages, so what is in the file is unknown: take no more
		// records. Reopening the bus recovers.
		t.fail(fmt.Errorf("topic log %s unusable: fsync: %w", t.name, err))
		return fmt.Errorf("sync topic log: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pos = append(t.pos, at)
	t.size = at + int64(len(buf))
	t.visible = int64(len(t.pos))
	t.wake()
	return nil
}

func (t *topicLog) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err == nil {
		t.err = err
	}
}

// wake tells waiting consumers that visible changed. Call with mu held.
func (t *topicLog) wake() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// wait returns once record off is visible, or ctx or done ended.
func (t *topicLog) wait(ctx context.Context, done <-chan struct{}, off int64) error {
	for {
		t.mu.Lock()
		visible, changed := t.visible, t.changed
		t.mu.Unlock()
		if off < visible {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return errClosed
		}
	}
}

// visibleCount is how many records consumers may read.
func (t *topicLog) visibleCount() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.visible
}

// read returns visible record off.
func (t *topicLog) read(off int64) (record, error) {
	t.mu.Lock()
	if off >= t.visible {
		t.mu.Unlock()
		return record{}, fmt.Errorf("read offset %d: beyond the end of the log", off)
	}
	if t.f == nil {
		r := t.mem[off]
		t.mu.Unlock()
		// Every group reads the same record: a handler that changes
		// its message must not change what the others see.
		r.value, r.headers = bytes.Clone(r.value), maps.Clone(r.headers)
		return r, nil
	}
	start, end := t.pos[off], t.size
	if off+1 < int64(len(t.pos)) {
		end = t.pos[off+1]
	}
	f := t.f
	t.mu.Unlock()

	buf := make([]byte, end-start)
	if _, err := f.ReadAt(buf, start); err != nil {
		return record{}, fmt.Errorf("read offset %d: %w", off, err)
	}
	body := buf[headerLen:]
	if crc32.Checksum(body, t.crc) != binary.BigEndian.Uint32(buf[4:8]) {
		return record{}, fmt.Errorf("read offset %d: checksum mismatch, the log file is damaged", off)
	}
	r, err := decodeBody(body)
	if err != nil {
		return record{}, fmt.Errorf("read offset %d: %w", off, err)
	}
	return r, nil
}

// group returns the state of group name, loading its committed offset.
func (t *topicLog) group(name string) (*group, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.groups[name]; ok {
		return g, nil
	}
	g := &group{name: name, lease: make(chan struct{}, 1)}
	if t.dir != "" {
		next, err := t.loadOffset(name)
		if err != nil {
			return nil, err
		}
		g.next = next
	}
	t.groups[name] = g
	return g, nil
}

type offsetFile struct {
	Next int64 `json:"next"`
}

func (t *topicLog) offsetPath(group string) string {
	return filepath.Join(t.dir, t.name, groupsDir, group+".json")
}

// loadOffset reads the committed offset of group. Call with mu held.
func (t *topicLog) loadOffset(group string) (int64, error) {
	b, err := os.ReadFile(t.offsetPath(group))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read offset of group %s: %w", group, err)
	}
	var of offsetFile
	if err := json.Unmarshal(b, &of); err != nil || of.Next < 0 {
		// The file is replaced atomically, so this is damage. Start
		// over: redelivery is safe (handlers are idempotent), skipping
		// is not.
		t.log.Error("unreadable group offset, redelivering the topic from the start",
			"topic", t.name, "group", group, "err", err)
		return 0, nil
	}
	if n := int64(len(t.pos)); of.Next > n {
		// Commits follow fsync'd records, so this needs the log to
		// have been cut or replaced by hand.
		t.log.Error("group offset beyond the end of the topic log", "topic", t.name, "group", group,
			"offset", of.Next, "records", n)
		return n, nil
	}
	return of.Next, nil
}

// commit records that g has handled everything before next.
func (t *topicLog) commit(g *group, next int64) error {
	g.next = next
	if t.dir == "" {
		return nil
	}
	b, err := json.Marshal(offsetFile{Next: next})
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(t.offsetPath(g.name), b, 0o640); err != nil {
		return fmt.Errorf("write offset of group %s: %w", g.name, err)
	}
	return nil
}

func (t *topicLog) close() error {
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.err = errClosed
	if t.f == nil {
		return nil
	}
	if err := t.f.Close(); err != nil {
		return fmt.Errorf("close topic log %s: %w", t.name, err)
	}
	return nil
}

// encodeRecord frames r for the log:
//
//	uint32 body length, uint32 CRC-32C of body (both big-endian), body:
//	  byte version (1)
//	  int64 publish time, Unix nanoseconds
//	  uvarint key length, key
//	  uvarint header count, then per header: uvarint length, name,
//	    uvarint length, value (sorted by name)
//	  value (the rest of the body)
func encodeRecord(tab *crc32.Table, r record) []byte {
	b := make([]byte, headerLen, headerLen+32+len(r.key)+len(r.value))
	b = append(b, recordVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(r.time.UnixNano()))
	b = binary.AppendUvarint(b, uint64(len(r.key)))
	b = append(b, r.key...)
	b = binary.AppendUvarint(b, uint64(len(r.headers)))
	for _, k := range slices.Sorted(maps.Keys(r.headers)) {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(r.headers[k])))
		b = append(b, r.headers[k]...)
	}
	b = append(b, r.value...)
	body := b[headerLen:]
	binary.BigEndian.PutUint32(b[0:4], uint32(len(body)))
	binary.BigEndian.PutUint32(b[4:8], crc32.Checksum(body, tab))
	return b
}

// decodeBody parses a record body written by encodeRecord.
func decodeBody(b []byte) (record, error) {
	var r record
	if len(b) < 9 || b[0] != recordVersion {
		return r, errors.New("unknown record version")
	}
	r.time = time.Unix(0, int64(binary.BigEndian.Uint64(b[1:9])))
	b = b[9:]
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	var ok bool
	if r.key, ok = str(); !ok {
		return r, errors.New("bad key")
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return r, errors.New("bad header count")
	}
	b = b[k:]
	if n > 0 {
		r.headers = make(map[string]string, n)
	}
	for range n {
		name, ok1 := str()
		val, ok2 := str()
		if !ok1 || !ok2 {
			return r, errors.New("bad header")
		}
		r.headers[name] = val
	}
	r.value = b
	return r, nil
}
