// Package web serves the pages of the people in the loop: staff login, a
// cabinet for each staff role (the expert's review queue and synchronized
// review; the center's candidates, exam groups and result cards; the
// council's decisions, appeals, centers and retention; the site's console
// with the identity check; NARK's verification, register, organisations
// and audit trail) and the candidate's exam page. The pages are plain HTML,
// CSS and JavaScript embedded in the binary
// (no CDN, no external fonts: personal data stays inside) and talk only to
// the public API under /api/v1 and to WHIP under /whip.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// Handler serves the pages under /ui/ (and / redirects there) and passes
// every other request to next, the API.
func Handler(next http.Handler) http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// The embedded tree always has a static directory.
		return next
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			http.Redirect(w, r, "/ui/", http.StatusFound)
		case r.URL.Path == "/ui":
			http.Redirect(w, r, "/ui/", http.StatusMovedPermanently)
		case strings.HasPrefix(r.URL.Path, "/ui/"):
			// The pages hold no secrets, but a person's session must not
			// run stale code after an upgrade.
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Set("Referrer-Policy", "no-referrer")
			// No page may be framed (clickjacking a login or an admission).
			w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
			w.Header().Set("X-Frame-Options", "DENY")
			files.ServeHTTP(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}
