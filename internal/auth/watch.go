package auth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// watchedFile is a configuration file loaded at start and again whenever
// its content changes. It is polled rather than watched with inotify:
// polling sees every way a file changes, Kubernetes' atomic symlink swap
// of mounted Secrets and ConfigMaps included, and the files are small.
type watchedFile struct {
	path  string
	label string // the file label of meridian_auth_file_reloads_total
	load  func(data []byte) error
	sum   [sha256.Size]byte
	gone  bool // the last poll could not read the file (said once)
}

// initial loads the file; its error fails start-up.
func (f *watchedFile) initial() error {
	data, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", f.path, err)
	}
	if err := f.load(data); err != nil {
		return err
	}
	f.sum = sha256.Sum256(data)
	return nil
}

// poll reloads the file if its content changed since the last good or
// bad load. It keeps the previous content when the new one is unreadable
// or invalid, and says so.
func (f *watchedFile) poll(m *metrics, log *slog.Logger) {
	data, err := os.ReadFile(f.path)
	if err != nil {
		if !f.gone {
			m.reloads.WithLabelValues(f.label, outcomeError).Inc()
			log.Error("cannot read; keeping what was loaded", "file", f.path, "err", err)
		}
		f.gone = true
		return
	}
	f.gone = false
	sum := sha256.Sum256(data)
	if sum == f.sum {
		return
	}
	f.sum = sum
	if err := f.load(data); err != nil {
		m.reloads.WithLabelValues(f.label, outcomeError).Inc()
		log.Error("reloading failed; keeping what was loaded before", "file", f.path, "err", err)
		return
	}
	m.reloads.WithLabelValues(f.label, outcomeOK).Inc()
	log.Info("reloaded", "file", f.path)
}

// watch polls files every interval until ctx ends, and calls after each
// round.
func watch(ctx context.Context, files []*watchedFile, interval time.Duration, m *metrics, log *slog.Logger, after func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, f := range files {
			f.poll(m, log)
		}
		after()
	}
}
