package secrets

import (
	"net/url"
	"strings"
)

// Scrub returns msg with the password of rawURL replaced by "xxxxx" in
// every form a library may quote it: as given (percent-encoded or not),
// decoded, and encoded again for a path or a query.
func Scrub(msg, rawURL string) string {
	var forms []string
	// The userinfo as written: between "//" and the last "@" before the
	// path, the password after its first ':'.
	if _, rest, ok := strings.Cut(rawURL, "//"); ok {
		if end := strings.IndexAny(rest, "/?#"); end >= 0 {
			rest = rest[:end]
		}
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
				forms = append(forms, pw)
			}
		}
	}
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			forms = append(forms, pw, url.PathEscape(pw), url.QueryEscape(pw))
		}
	}
	for _, f := range forms {
		if f != "" {
			msg = strings.ReplaceAll(msg, f, "xxxxx")
		}
	}
	return msg
}

// RedactURL returns rawURL with its password replaced, for logs and
// messages; an unparsable URL, which may hold a password anywhere, is
// "<unparsable url>".
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "<unparsable url>"
	}
	return u.Redacted()
}
