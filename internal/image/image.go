package image

import (
	"fmt"
	"log/slog"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Config is what a container runtime reads from an image's configuration.
type Config struct {
	User         string            // "uid:gid"
	Env          []string          // KEY=value
	WorkingDir   string            // absolute
	Entrypoint   []string          // the program and its fixed arguments
	Cmd          []string          // default arguments
	ExposedPorts []string          // e.g. "8000/tcp"
	Labels       map[string]string // e.g. org.opencontainers.image.version
}

// Layer is one layer to build: its entries and a line for the image's
// history saying what it holds.
type Layer struct {
	Comment string
	Entries []Entry
}

// Spec is a whole image.
type Spec struct {
	Config Config
	Layers []Layer
	// Created is the image's creation time, in its configuration and
	// history; fix it (SOURCE_DATE_EPOCH, the commit time) for reproducible
	// digests.
	Created time.Time
	// FileTime is every file's time stamp in the layers; the zero value
	// means Created. A time that stays put across builds (the Unix epoch)
	// keeps the digests of layers whose files did not change.
	FileTime time.Time
	// Log receives a line per layer built; nil discards them.
	Log *slog.Logger
}

// Build builds the image for linux/amd64 with OCI media types throughout:
// the same Spec and file contents give the same digest.
func Build(spec Spec) (v1.Image, error) {
	log := spec.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	created := v1.Time{Time: spec.Created.UTC().Truncate(time.Second)}
	fileTime := spec.FileTime
	if fileTime.IsZero() {
		fileTime = created.Time
	}
	cf := &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      created,
		Config:       runtimeConfig(spec.Config),
		RootFS:       v1.RootFS{Type: "layers"},
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting the image configuration: %w", err)
	}
	adds := make([]mutate.Addendum, 0, len(spec.Layers))
	for _, l := range spec.Layers {
		start := time.Now()
		layer, err := NewLayer(l.Entries, fileTime)
		if err != nil {
			return nil, fmt.Errorf("building the image layer %q: %w", l.Comment, err)
		}
		digest, err := layer.Digest()
		if err != nil {
			return nil, fmt.Errorf("hashing the image layer %q: %w", l.Comment, err)
		}
		size, err := layer.Size()
		if err != nil {
			return nil, fmt.Errorf("sizing the image layer %q: %w", l.Comment, err)
		}
		log.Info("layer built", "layer", l.Comment, "entries", len(l.Entries), "bytes", size,
			"digest", digest.String(), "took", time.Since(start).Round(time.Millisecond).String())
		adds = append(adds, mutate.Addendum{
			Layer:     layer,
			MediaType: types.OCILayer,
			History:   v1.History{Created: created, CreatedBy: l.Comment, Comment: "meridian.dev/meridian/internal/image"},
		})
	}
	img, err = mutate.Append(img, adds...)
	if err != nil {
		return nil, fmt.Errorf("adding the layers to the image: %w", err)
	}
	return img, nil
}

// runtimeConfig converts Config to the OCI image configuration.
func runtimeConfig(c Config) v1.Config {
	rc := v1.Config{
		User:       c.User,
		Env:        c.Env,
		WorkingDir: c.WorkingDir,
		Entrypoint: c.Entrypoint,
		Cmd:        c.Cmd,
		Labels:     c.Labels,
	}
	if len(c.ExposedPorts) > 0 {
		rc.ExposedPorts = make(map[string]struct{}, len(c.ExposedPorts))
		for _, p := range c.ExposedPorts {
			rc.ExposedPorts[p] = struct{}{}
		}
	}
	return rc
}
