// Command buildimage builds Meridian's OCI images without Docker (`make
// image`): the meridian image (the Debian base extracted by
// scripts/fetch-debs.sh, ONNX Runtime, the models, bin/meridian) and the
// Kubernetes sandbox image pause (tools/pause), into one OCI image layout.
//
// Run it from the repository root after `make bin`, scripts/fetch-debs.sh
// and a static build of tools/pause; `make image` does all of it:
//
//	go run ./tools/buildimage -version v0.3.0 -revision $(git rev-parse HEAD)
//
// It writes the layout to .cache/image/meridian (reference names
// meridian:<version> and pause:3.10), the digests to
// .cache/image/meridian.digest and .cache/image/pause.digest, and prints
// "image meridian@sha256:…" and "image pause@sha256:…".
//
// The images are reproducible: the same commit and inputs give the same
// digests. When SOURCE_DATE_EPOCH is set, it is every time stamp. Otherwise
// the images' creation time is the commit time of HEAD (else 0) and every
// file is stamped 1970-01-01, so layers whose files did not change (the
// Debian base, ONNX Runtime, the models) keep their digests from one commit
// to the next and nodes do not pull them again.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"meridian.dev/meridian/internal/image"
)

type options struct {
	out, base, binary, ort, models, pause string
	version, revision, source             string
}

func main() {
	var o options
	flag.StringVar(&o.out, "out", ".cache/image", "directory for the layout (<out>/meridian) and the digest files (<out>/meridian.digest, <out>/pause.digest)")
	flag.StringVar(&o.base, "base", ".cache/image/base", "the Debian packages extracted by scripts/fetch-debs.sh")
	flag.StringVar(&o.binary, "binary", "bin/meridian", "the meridian binary (make bin)")
	flag.StringVar(&o.ort, "ort", ".cache/onnxruntime/libonnxruntime.so.1", "ONNX Runtime's shared library (make deps)")
	flag.StringVar(&o.models, "models", "models", "the model repository copied to /models")
	flag.StringVar(&o.pause, "pause", ".cache/image/pause", "the static pause binary (CGO_ENABLED=0 go build ./tools/pause)")
	flag.StringVar(&o.version, "version", "", "the meridian version: the image's tag and version label (default: git describe --tags --always --dirty)")
	flag.StringVar(&o.revision, "revision", "", "the commit the image is built from, for its revision label (default: git rev-parse HEAD)")
	flag.StringVar(&o.source, "source", "https://meridian.dev/meridian", "the source repository, for the image's source label")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(o, log); err != nil {
		fmt.Fprintln(os.Stderr, "buildimage:", err)
		os.Exit(1)
	}
}

func run(o options, log *slog.Logger) error {
	for _, p := range []struct{ path, how string }{
		{o.base, "run scripts/fetch-debs.sh " + o.base},
		{o.binary, "run make bin"},
		{o.ort, "run make deps"},
		{filepath.Join(o.models, "textdir", "1", "model.onnx"), "run make deps"},
		{o.pause, "run CGO_ENABLED=0 go build -o " + o.pause + " ./tools/pause"},
	} {
		if _, err := os.Stat(p.path); err != nil {
			return fmt.Errorf("image input missing: %w (%s, or use make image)", err, p.how)
		}
	}
	var err error
	if o.version == "" {
		if o.version, err = git("describe", "--tags", "--always", "--dirty"); err != nil {
			return fmt.Errorf("naming the image's version: %w; pass -version", err)
		}
	}
	if o.revision == "" {
		if o.revision, err = git("rev-parse", "HEAD"); err != nil {
			return fmt.Errorf("finding the image's revision: %w; pass -revision", err)
		}
	}
	created, fileTime, from, err := epoch()
	if err != nil {
		return err
	}
	log.Info("building images", "version", o.version, "revision", o.revision,
		"created", created.Format(time.RFC3339), "created_from", from, "file_time", fileTime.Format(time.RFC3339))

	spec, err := image.MeridianSpec(image.MeridianInputs{
		Base: o.base, Binary: o.binary, ORTLib: o.ort, Models: o.models,
		Version: o.version, Revision: o.revision, Source: o.source, Created: created, FileTime: fileTime,
	})
	if err != nil {
		return err
	}
	spec.Log = log.With("image", "meridian")
	meridian, err := image.Build(spec)
	if err != nil {
		return fmt.Errorf("building the meridian image: %w", err)
	}
	pauseSpec := image.PauseSpec(o.pause, created, fileTime)
	pauseSpec.Log = log.With("image", "pause")
	pause, err := image.Build(pauseSpec)
	if err != nil {
		return fmt.Errorf("building the pause image: %w", err)
	}
	return write(o, log, map[string]v1.Image{"meridian:" + o.version: meridian, "pause:" + image.PauseTag: pause})
}

// write writes the layout and the digest files and prints the digests.
func write(o options, log *slog.Logger, images map[string]v1.Image) error {
	dir := filepath.Join(o.out, "meridian")
	start := time.Now()
	log.Info("writing the image layout", "dir", dir)
	if err := image.WriteLayout(dir, images); err != nil {
		return err
	}
	log.Info("image layout written", "dir", dir, "took", time.Since(start).Round(time.Millisecond).String())
	for _, repo := range []string{"meridian", "pause"} {
		img, err := image.Load(dir, repo)
		if err != nil {
			return fmt.Errorf("reading back what was written: %w", err)
		}
		d, err := img.Digest()
		if err != nil {
			return fmt.Errorf("hashing the %s image: %w", repo, err)
		}
		file := filepath.Join(o.out, repo+".digest")
		if err := os.WriteFile(file, []byte(d.String()+"\n"), 0o644); err != nil {
			return fmt.Errorf("writing the %s image's digest: %w", repo, err)
		}
		fmt.Printf("image %s@%s\n", repo, d)
	}
	return nil
}

// epoch returns the images' creation time and the files' time stamp:
// both SOURCE_DATE_EPOCH when it is set, else the commit time of HEAD (or
// the Unix epoch without git) and the Unix epoch; from says where the
// creation time came from.
func epoch() (created, files time.Time, from string, err error) {
	zero := time.Unix(0, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return zero, zero, "", fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds: %w", s, err)
		}
		t := time.Unix(sec, 0).UTC()
		return t, t, "SOURCE_DATE_EPOCH", nil
	}
	if s, err := git("log", "-1", "--format=%ct", "HEAD"); err == nil {
		if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(sec, 0).UTC(), zero, "commit time of HEAD", nil
		}
	}
	return zero, zero, "none (no SOURCE_DATE_EPOCH, no git)", nil
}

// git runs git with args and returns its trimmed output.
func git(args ...string) (string, error) {
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
