package seal

import (
	"fmt"
	"time"
)

// The blob store keeps version v of a candidate-exam's seal under
// KeysPrefix(exam, candidate) + "%04d/": manifest.json and manifest.sig,
// the signature written first and the manifest last, so that a stored
// manifest is a complete seal. Versions go up by one from 1. The archiver
// writes them; an export finds the newest one the registry has not heard
// of yet by looking for the next version's manifest.
const (
	manifestName  = "manifest.json"
	signatureName = "manifest.sig"
)

// KeysPrefix is the prefix of every seal of a candidate-exam.
func KeysPrefix(exam, candidate string) string {
	return "seals/" + exam + "/" + candidate + "/"
}

// Keys returns the object keys of version v of a candidate-exam's seal: the
// manifest and its signature.
func Keys(exam, candidate string, v int) (manifest, signature string) {
	base := fmt.Sprintf("%s%04d/", KeysPrefix(exam, candidate), v)
	return base + manifestName, base + signatureName
}

// Record is one seal of a candidate-exam as the archiver records it and the
// registry keeps a copy of it (events.SealWritten): where its manifest and
// signature are stored, and what the manifest says.
type Record struct {
	ExamID       string
	CandidateID  string
	Version      int
	ManifestKey  string
	SignatureKey string
	MerkleRoot   string
	KeyID        string
	Objects      int
	Bytes        int64
	SealedAt     time.Time
}
