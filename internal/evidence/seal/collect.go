package seal

import (
	"context"
	"slices"
	"strings"
	"time"
)

// Scope is the candidate-exam a manifest is made for: whose evidence, the
// exam site and window, and the candidate's own devices. Room footage of
// the site in the window is evidence for every candidate of the exam; a
// webcam's or screen's only for the candidate it belongs to.
type Scope struct {
	ExamID      string
	CandidateID string
	Site        string
	Start, End  time.Time
	Webcam      string
	Screen      string
}

// Serves reports whether footage of device (a room camera when room) is
// evidence for the candidate-exam.
func (s Scope) Serves(device string, room bool) bool {
	return room || device == s.Webcam || device == s.Screen
}

// Object is an archived media or init segment as the archive's index
// records it.
type Object struct {
	Key      string
	Stream   string
	Device   string
	Source   string
	Room     bool // footage of a room camera
	Sequence int64
	// Start and End: a segment's footage (an init segment's are unused).
	Start, End time.Time
	Size       int64
	SHA256     string
	PrevChain  string
	Chain      string
	Init       string // a media segment's init segment
	// Verified: the stored bytes matched ingest's announcement on arrival.
	Verified bool
}

// Document is a document that is evidence of a candidate-exam (the
// candidate's papers, the exam's commission protocol) as the registry
// recorded its upload.
type Document struct {
	Key        string
	Kind       string
	Size       int64
	SHA256     string
	UploadedAt time.Time
	// Archived: the archiver took it; Verified: its stored bytes matched
	// the upload's record then; Deleted: it is gone from the archive.
	Archived, Verified, Deleted bool
}

// Index is what Collect reads: the archive's index of objects and the
// candidate-exam's documents.
type Index interface {
	// Segments returns up to limit archived media segments of site whose
	// footage overlaps [from, to), in key order after afterKey.
	Segments(ctx context.Context, site string, from, to time.Time, afterKey string, limit int) ([]Object, error)
	// Objects returns the archived objects among keys.
	Objects(ctx context.Context, keys []string) ([]Object, error)
	// Documents returns the documents that are evidence of the
	// candidate-exam, in key order.
	Documents(ctx context.Context, exam, candidate string) ([]Document, error)
}

// Collect returns the manifest entries of every kept object that is
// evidence for a candidate-exam (its media segments and their init
// segments, the candidate's documents and the exam's protocol), in canonical
// order, and the objects among them that failed the check on arrival. It
// reads the index in pages of batch. The archiver seals what it returns,
// and an export before any seal signs it on the spot.
func Collect(ctx context.Context, ix Index, sc Scope, batch int) ([]Entry, []Problem, error) {
	entries, problems, err := documentEntries(ctx, ix, sc)
	if err != nil {
		return nil, nil, err
	}
	type span struct{ start, end time.Time }
	inits := map[string]*span{}
	var initKeys []string
	after := ""
	for {
		page, err := ix.Segments(ctx, sc.Site, sc.Start, sc.End, after, batch)
		if err != nil {
			return nil, nil, err
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].Key
		for _, o := range page {
			if !sc.Serves(o.Device, o.Room) {
				continue
			}
			entries = append(entries, Entry{Kind: KindSegment, Key: o.Key, Size: o.Size, SHA256: o.SHA256,
				Stream: o.Stream, Source: o.Source, Sequence: o.Sequence, Start: o.Start.UTC(), End: o.End.UTC(),
				PrevChain: o.PrevChain, Chain: o.Chain, Init: o.Init})
			if !o.Verified {
				problems = append(problems, Problem{Key: o.Key, Detail: "the stored bytes did not match ingest's announcement on arrival"})
			}
			sp := inits[o.Init]
			if sp == nil {
				sp = &span{o.Start, o.End}
				inits[o.Init] = sp
				initKeys = append(initKeys, o.Init)
			}
			if o.Start.Before(sp.start) {
				sp.start = o.Start
			}
			if o.End.After(sp.end) {
				sp.end = o.End
			}
		}
		if len(page) < batch {
			break
		}
	}
	slices.Sort(initKeys)
	for i := 0; i < len(initKeys); i += batch {
		objs, err := ix.Objects(ctx, initKeys[i:min(i+batch, len(initKeys))])
		if err != nil {
			return nil, nil, err
		}
		for _, o := range objs {
			sp := inits[o.Key]
			entries = append(entries, Entry{Kind: KindInit, Key: o.Key, Size: o.Size, SHA256: o.SHA256,
				Stream: o.Stream, Source: o.Source, Start: sp.start.UTC(), End: sp.end.UTC()})
			if !o.Verified {
				problems = append(problems, Problem{Key: o.Key, Detail: "the stored bytes did not match ingest's announcement on arrival"})
			}
			delete(inits, o.Key)
		}
	}
	for k := range inits {
		problems = append(problems, Problem{Key: k, Detail: "init segment not archived"})
	}
	Sort(entries)
	slices.SortFunc(problems, func(a, b Problem) int { return strings.Compare(a.Key, b.Key) })
	return entries, problems, nil
}

// documentEntries returns the entries of the candidate-exam's documents
// that are still archived, and those whose stored bytes did not match the
// registry's record of the upload.
func documentEntries(ctx context.Context, ix Index, sc Scope) ([]Entry, []Problem, error) {
	docs, err := ix.Documents(ctx, sc.ExamID, sc.CandidateID)
	if err != nil {
		return nil, nil, err
	}
	var entries []Entry
	var problems []Problem
	for _, d := range docs {
		if d.Deleted {
			continue
		}
		entries = append(entries, Entry{Kind: KindDocument, Key: d.Key, Size: d.Size, SHA256: d.SHA256,
			Source: d.Kind, Start: d.UploadedAt.UTC(), End: d.UploadedAt.UTC()})
		if d.Archived && !d.Verified {
			problems = append(problems, Problem{Key: d.Key,
				Detail: "the stored bytes did not match the registry's record of the upload"})
		}
	}
	return entries, problems, nil
}
