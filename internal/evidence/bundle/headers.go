package bundle

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// A tar file can say a file's name in several places: the header's name
// field, the ustar prefix field, a GNU long name ('L'), a PAX extended
// header ('x'). Tar readers do not agree on which wins when a header carries
// more than one: archive/tar takes a GNU long name over a PAX path, GNU tar
// the PAX path; archive/tar keeps only the last of two PAX headers, Python's
// tarfile merges them; Python reads the prefix field of every header,
// archive/tar and GNU tar only of a POSIX one. A bundle built on such a
// disagreement would verify as one set of files and unpack, with another
// reader, as another: the segments of a stream swapped, say. headerWalker
// follows the tar's header blocks as the bytes pass, on its own, and the
// verifier refuses every file whose name tar readers might read differently.
//
// It mirrors archive/tar's framing (which it must, to find the headers):
// PAX 'x' and GNU 'L' and 'K' headers belong to the next header; every
// other header is a file archive/tar returns (a PAX global header 'g'
// included); the data of a file has the PAX size if one is given, else the
// header's, and none for links, devices, directories and FIFOs. Where it
// cannot follow (a size it cannot read, an old GNU sparse file, a header
// larger than archive/tar reads), it says so, and the verifier fails the
// bundle there rather than check what it might misread.

// maxExtHeader is the most bytes of an extended header the walker reads,
// as archive/tar (which refuses more).
const maxExtHeader = 1 << 20

// entryHeaders is what the walker found of one file's headers: "" if its
// name is unambiguous, else why not.
type entryHeaders struct {
	ambiguous string
}

type headerWalker struct {
	r io.Reader
	// blk collects a header block; n is how much of it is there.
	blk [blockSize]byte
	n   int
	// data is what is left of the current data section, pad its padding.
	data, pad int64
	// ext collects the data of an extended header of type extType.
	ext     []byte
	extType byte
	// The extended headers met since the last file.
	pax, long, longLink int
	paxPaths            int
	paxSize             string
	// longName and paxName are the names of a GNU long name and a PAX
	// path, if any.
	longName, paxName string
	// entries are the files found that the verifier has not taken yet.
	entries []entryHeaders
	// err is set when the walker can no longer follow the tar.
	err error
}

const blockSize = 512

func (w *headerWalker) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	w.walk(p[:n])
	return n, err
}

// next returns what the walker found of the next file archive/tar
// returned, or an error if it could not follow the tar that far.
func (w *headerWalker) next() (entryHeaders, error) {
	if len(w.entries) == 0 {
		if w.err != nil {
			return entryHeaders{}, w.err
		}
		return entryHeaders{}, errors.New("the tar's headers could not be followed to this file")
	}
	e := w.entries[0]
	w.entries = w.entries[1:]
	return e, nil
}

func (w *headerWalker) walk(p []byte) {
	for len(p) > 0 && w.err == nil {
		switch {
		case w.data > 0:
			k := int(min(w.data, int64(len(p))))
			if w.extType != 0 {
				w.ext = append(w.ext, p[:k]...)
			}
			w.data -= int64(k)
			p = p[k:]
			if w.data == 0 && w.extType != 0 {
				w.extended()
			}
		case w.pad > 0:
			k := int(min(w.pad, int64(len(p))))
			w.pad -= int64(k)
			p = p[k:]
		default:
			k := copy(w.blk[w.n:], p)
			w.n += k
			p = p[k:]
			if w.n == blockSize {
				w.n = 0
				w.header()
			}
		}
	}
}

// header handles a header block.
func (w *headerWalker) header() {
	b := w.blk[:]
	if bytes.Equal(b, make([]byte, blockSize)) {
		return // The end of the archive, or its padding.
	}
	size, ok := tarNumber(b[124:136])
	if !ok || size < 0 {
		w.err = errors.New("a header with a size no tar reader can read")
		return
	}
	typ := b[156]
	switch typ {
	case 'x', 'L', 'K':
		if size > maxExtHeader {
			w.err = fmt.Errorf("an extended header of %d bytes", size)
			return
		}
		switch typ {
		case 'x':
			w.pax++
		case 'L':
			w.long++
		case 'K':
			w.longLink++
		}
		w.extType, w.ext = typ, w.ext[:0]
		w.setData(size)
		if size == 0 {
			w.extended()
		}
		return
	case 'S':
		w.err = errors.New("an old GNU sparse file: a bundle has only plain files")
		return
	}
	// A file: archive/tar returns it.
	var why []string
	switch {
	case w.pax > 1:
		why = append(why, fmt.Sprintf("%d PAX headers (tar readers keep the last, or merge them)", w.pax))
	case w.long > 1:
		why = append(why, fmt.Sprintf("%d GNU long names (tar readers take the first, or the last)", w.long))
	case w.long > 0 && w.pax > 0:
		why = append(why, "both a GNU long name and a PAX header (tar readers take one or the other)")
	case w.longLink > 0:
		why = append(why, "a GNU long link name")
	}
	posix := string(b[257:263]) == "ustar\x00"
	switch {
	case posix && !zero(b[500:]):
		why = append(why, "a POSIX header with a star trailer (tar readers read its prefix field differently)")
	case !posix && !zero(b[345:500]):
		why = append(why, "bytes in the prefix field of a header that is not POSIX (some tar readers take them as part of the name)")
	}
	if w.paxPaths > 1 {
		why = append(why, fmt.Sprintf("a PAX header with %d paths", w.paxPaths))
	}
	if w.paxSize != "" && typ != 'g' {
		s, err := strconv.ParseInt(w.paxSize, 10, 64)
		if err != nil || s < 0 {
			w.err = fmt.Errorf("a PAX size %q", w.paxSize)
			return
		}
		size = s
	}
	switch typ {
	case '1', '2', '3', '4', '5', '6':
		size = 0 // archive/tar reads no data for these, whatever the size says.
	case 0:
		// The old type of a regular file, a directory if its name ends
		// in a slash: the name archive/tar settles on says which.
		name := cstring(b[:100])
		switch {
		case w.longName != "":
			name = w.longName
		case w.paxName != "":
			name = w.paxName
		case posix:
			if prefix := cstring(b[345:500]); prefix != "" {
				name = prefix + "/" + name
			}
		}
		if strings.HasSuffix(name, "/") {
			size = 0
		}
	}
	w.entries = append(w.entries, entryHeaders{ambiguous: strings.Join(why, "; ")})
	w.pax, w.long, w.longLink, w.paxPaths, w.paxSize, w.longName, w.paxName = 0, 0, 0, 0, "", "", ""
	w.extType = 0
	w.setData(size)
}

func (w *headerWalker) setData(size int64) {
	w.data = size
	w.pad = (blockSize - size%blockSize) % blockSize
}

// extended handles the data of an extended header once read.
func (w *headerWalker) extended() {
	typ := w.extType
	w.extType = 0
	if typ == 'L' {
		w.longName = cstring(w.ext)
	}
	if typ != 'x' {
		return
	}
	recs := w.ext
	for len(recs) > 0 {
		sp := bytes.IndexByte(recs, ' ')
		if sp <= 0 {
			w.err = errors.New("a PAX header that is not records")
			return
		}
		n, err := strconv.Atoi(string(recs[:sp]))
		if err != nil || n <= sp || n > len(recs) || recs[n-1] != '\n' {
			w.err = errors.New("a PAX header that is not records")
			return
		}
		k, v, ok := strings.Cut(string(recs[sp+1:n-1]), "=")
		if !ok {
			w.err = errors.New("a PAX header that is not records")
			return
		}
		switch k {
		case "path":
			w.paxPaths++
			w.paxName = v
		case "size":
			w.paxSize = v
		}
		recs = recs[n:]
	}
}

// tarNumber reads a numeric field of a tar header as archive/tar does:
// octal up to a NUL, spaces and NULs around it ignored, or base-256 when the
// first byte has its high bit set; ok false for what archive/tar refuses.
func tarNumber(b []byte) (int64, bool) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		if b[0]&0x40 != 0 {
			return 0, false // negative
		}
		var x int64
		for i, c := range b {
			if i == 0 {
				c &= 0x7f
			}
			if x > (1<<63-1)>>8 {
				return 0, false
			}
			x = x<<8 | int64(c)
		}
		return x, true
	}
	b = bytes.Trim(b, " \x00")
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if len(b) == 0 {
		return 0, true
	}
	x, err := strconv.ParseInt(string(b), 8, 64)
	return x, err == nil
}

// cstring is b up to its first NUL.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func zero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
