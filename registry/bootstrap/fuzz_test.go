package bootstrap_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/nokstream/nokstream/registry/bootstrap"
)

// lineRE finds the position that Decode names in an error.
var lineRE = regexp.MustCompile(`^decode import file: line (\d+), column (\d+): `)

// FuzzImport feeds arbitrary bytes to the import file parser (the seed
// corpus in testdata/fuzz/FuzzImport holds testdata/exam.json and broken
// files): it never panics; a refused file's error says it is the import
// file, and one that is not JSON or has a value of the wrong type names a
// line of the file; an accepted file re-encodes to a file that decodes to
// the same.
func FuzzImport(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := bootstrap.Decode(bytes.NewReader(data))
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "decode import file: ") {
				t.Fatalf("error %q does not say it is the import file", msg)
			}
			var syn *json.SyntaxError
			var typ *json.UnmarshalTypeError
			if !errors.As(err, &syn) && !errors.As(err, &typ) {
				return
			}
			m := lineRE.FindStringSubmatch(msg)
			if m == nil {
				t.Fatalf("error %q names no line", msg)
			}
			if line, _ := strconv.Atoi(m[1]); line < 1 || line > 1+bytes.Count(data, []byte("\n")) {
				t.Fatalf("error %q names a line the file does not have", msg)
			}
			return
		}
		b, err := json.Marshal(file)
		if err != nil {
			t.Fatalf("an accepted file does not encode: %v", err)
		}
		again, err := bootstrap.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("an accepted file, re-encoded as %s, is refused: %v", b, err)
		}
		b2, err := json.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("an accepted file changed in a round trip:\n%s\n%s", b, b2)
		}
	})
}

// TestDecodeNamesTheLine: an operator told that the import file is wrong
// is told where.
func TestDecodeNamesTheLine(t *testing.T) {
	for _, c := range []struct{ name, file, want string }{
		{"syntax", "{\n  \"councils\": [\n    {\"id\": \"c1\",}\n  ]\n}\n", "line 3, column 18: invalid character '}'"},
		{"type", "{\n  \"sites\": [\n    {\"id\": \"s1\", \"phones\": \"+7 495\"}\n  ]\n}\n", "line 3, column "},
		{"truncated", "{\n  \"councils\": [\n", "line 3, column 1: unexpected EOF"},
		{"data after", "{\"councils\": []}\n\n {}", "line 3, column 2: data after the object"},
		{"unknown field", "{\"councils\":[{\"id\":\"x\",\"nmae\":\"y\"}]}", `unknown field "nmae"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := bootstrap.Decode(strings.NewReader(c.file))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one with %q", err, c.want)
			}
			if c.name == "type" {
				if m := lineRE.FindStringSubmatch(fmt.Sprint(err)); m == nil || m[1] != "3" {
					t.Errorf("error %v names no line 3", err)
				}
			}
		})
	}
}
