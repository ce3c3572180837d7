// Package chain is the hash chain of a stream's segments, the one
// implementation every part calls: ingest computes each segment's value as
// it closes it, the archiver checks it on arrival, a seal lists it and the
// bundle verifier checks it offline.
//
// A segment's chain value is the hex SHA-256 of the previous segment's chain
// value (32 bytes) followed by the segment's own SHA-256 (32 bytes); the
// first segment of a stream follows Zero. Dropping, reordering or changing
// one segment changes every value after it.
package chain

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Zero is the chain value that precedes a stream's first segment: 32 zero
// bytes in hex.
const Zero = "0000000000000000000000000000000000000000000000000000000000000000"

// Next returns the chain value that follows prev for a segment whose SHA-256
// is sha, both in hex: hex SHA-256(prev bytes || sha bytes).
func Next(prev, sha string) (string, error) {
	p, err := hex.DecodeString(prev)
	if err != nil || len(p) != sha256.Size {
		return "", fmt.Errorf("chain: bad previous chain value %q", prev)
	}
	s, err := hex.DecodeString(sha)
	if err != nil || len(s) != sha256.Size {
		return "", fmt.Errorf("chain: bad segment sha256 %q", sha)
	}
	h := sha256.New()
	h.Write(p)
	h.Write(s)
	return hex.EncodeToString(h.Sum(nil)), nil
}
