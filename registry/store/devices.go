package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Device kinds: what a device records.
const (
	KindRoom   = "room"
	KindWebcam = "webcam"
	KindScreen = "screen"
)

// Device is a registered publisher of one stream, <site>/<name>.
type Device struct {
	Site      string
	Name      string
	Kind      string // KindRoom, KindWebcam or KindScreen
	CreatedAt time.Time
	Disabled  bool
}

// StreamID returns the stream the device publishes, "<site>/<name>".
func (d Device) StreamID() string { return d.Site + "/" + d.Name }

// AddDevice registers device at site, which must exist (ErrNotFound; sites
// are made with SaveSite), and returns the device's publish secret. The
// secret is shown only here: the registry keeps its hash. Adding a
// registered device fails with ErrExists; RotateDeviceSecret gives it a new
// secret.
func (s *Store) AddDevice(ctx context.Context, site, device, kind string) (secret string, err error) {
	if err := checkDevice(site, device); err != nil {
		return "", err
	}
	switch kind {
	case KindRoom, KindWebcam, KindScreen:
	default:
		return "", fmt.Errorf("add device %s/%s: %w: kind %q is not room, webcam or screen", site, device, ErrInvalid, kind)
	}
	secret, hash, err := newDeviceSecret()
	if err != nil {
		return "", fmt.Errorf("add device %s/%s: %w", site, device, err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT id FROM sites WHERE id = $1`, site).Scan(new(string))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: site %s: create it with 'nokstream org add site'", ErrNotFound, site)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx,
			`INSERT INTO devices (site, name, kind, secret_hash) VALUES ($1, $2, $3, $4)`,
			site, device, kind, hash)
		return err
	})
	if isUniqueViolation(err) {
		return "", fmt.Errorf("add device %s/%s: %w", site, device, ErrExists)
	}
	if err != nil {
		return "", fmt.Errorf("add device %s/%s: %w", site, device, err)
	}
	return secret, nil
}

// RotateDeviceSecret gives a registered device a new publish secret and
// returns it; the old one stops working at once. An unknown device is
// ErrUnknownDevice.
func (s *Store) RotateDeviceSecret(ctx context.Context, site, device string) (secret string, err error) {
	if err := checkDevice(site, device); err != nil {
		return "", err
	}
	secret, hash, err := newDeviceSecret()
	if err != nil {
		return "", fmt.Errorf("rotate secret of %s/%s: %w", site, device, err)
	}
	tag, err := s.pool.Exec(ctx,
		`UPDATE devices SET secret_hash = $3 WHERE site = $1 AND name = $2`,
		site, device, hash)
	if err != nil {
		return "", fmt.Errorf("rotate secret of %s/%s: %w", site, device, err)
	}
	if tag.RowsAffected() == 0 {
		return "", fmt.Errorf("rotate secret of %s/%s: %w", site, device, ErrUnknownDevice)
	}
	return secret, nil
}

// AuthenticateDevice checks the credentials a publisher of <site>/<device>
// presented. The user must be the device name and the secret the device's.
// It returns ErrUnknownDevice when no such device is registered and
// ErrBadCredentials when the credentials are missing or wrong or the device
// is disabled.
func (s *Store) AuthenticateDevice(ctx context.Context, site, device, user, secret string) (Device, error) {
	if !ValidName(site) || !ValidName(device) {
		return Device{}, fmt.Errorf("authenticate device: %w", ErrUnknownDevice)
	}
	var d Device
	var stored string
	err := s.pool.QueryRow(ctx,
		`SELECT site, name, kind, created_at, disabled, secret_hash FROM devices WHERE site = $1 AND name = $2`,
		site, device).Scan(&d.Site, &d.Name, &d.Kind, &d.CreatedAt, &d.Disabled, &stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return Device{}, fmt.Errorf("authenticate device %s/%s: %w", site, device, ErrUnknownDevice)
	}
	if err != nil {
		return Device{}, fmt.Errorf("authenticate device %s/%s: %w", site, device, err)
	}
	want, err := hex.DecodeString(stored)
	if err != nil {
		return Device{}, fmt.Errorf("authenticate device %s/%s: stored secret hash: %w", site, device, err)
	}
	got := sha256.Sum256([]byte(secret))
	secretOK := subtle.ConstantTimeCompare(got[:], want) == 1
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(device)) == 1
	if !secretOK || !userOK || d.Disabled {
		return Device{}, fmt.Errorf("authenticate device %s/%s: %w", site, device, ErrBadCredentials)
	}
	return d, nil
}

// checkDevice validates a site and device name pair.
func checkDevice(site, device string) error {
	if !ValidName(site) {
		return fmt.Errorf("%w: site name %q: want 1-63 of a-z, 0-9, '_', '-', starting with a letter or digit", ErrInvalid, site)
	}
	if !ValidName(device) {
		return fmt.Errorf("%w: device name %q: want 1-63 of a-z, 0-9, '_', '-', starting with a letter or digit", ErrInvalid, device)
	}
	return nil
}

// newDeviceSecret returns a publish secret of 32 random bytes, encoded to be
// safe in the userinfo of an RTSP URL, and the hex SHA-256 of that encoding.
// The secret has 256 bits of entropy, so a fast hash suffices.
func newDeviceSecret() (secret, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate secret: %w", err)
	}
	secret = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(secret))
	return secret, hex.EncodeToString(sum[:]), nil
}
