package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// PullDevice is a device that ingest pulls from a camera. URLSealed is the
// camera URL as sealed by the caller (internal/secrets): the store never
// sees it in clear.
type PullDevice struct {
	Device
	URLSealed []byte
}

// SetDevicePull makes a registered device pulled from the camera whose URL
// is sealed, replacing any earlier URL. An unknown device is
// ErrUnknownDevice.
func (s *Store) SetDevicePull(ctx context.Context, site, device string, urlSealed []byte) error {
	if err := checkDevice(site, device); err != nil {
		return err
	}
	if len(urlSealed) == 0 {
		return fmt.Errorf("set pull url of %s/%s: %w: empty", site, device, ErrInvalid)
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO device_pulls (site, name, url_sealed)
		SELECT site, name, $3 FROM devices WHERE site = $1 AND name = $2
		ON CONFLICT (site, name) DO UPDATE SET url_sealed = EXCLUDED.url_sealed, updated_at = now()`,
		site, device, urlSealed)
	if err != nil {
		return fmt.Errorf("set pull url of %s/%s: %w", site, device, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set pull url of %s/%s: %w", site, device, ErrUnknownDevice)
	}
	return nil
}

// PullDevices returns the enabled devices that ingest pulls.
func (s *Store) PullDevices(ctx context.Context) ([]PullDevice, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT d.site, d.name, d.kind, d.created_at, d.disabled, p.url_sealed
		FROM device_pulls p JOIN devices d USING (site, name)
		WHERE NOT d.disabled
		ORDER BY d.site, d.name`)
	if err != nil {
		return nil, fmt.Errorf("list pull devices: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (PullDevice, error) {
		var p PullDevice
		err := row.Scan(&p.Site, &p.Name, &p.Kind, &p.CreatedAt, &p.Disabled, &p.URLSealed)
		return p, err
	})
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("list pull devices: %w", err)
	}
	return out, nil
}
