package image

import (
	"fmt"
	"io/fs"
	"time"
)

// The meridian image's fixed paths and identity.
const (
	BinaryPath  = "/usr/local/bin/meridian"
	ORTLibPath  = "/usr/lib/meridian/libonnxruntime.so.1"
	ModelsPath  = "/models"
	User        = "meridian"
	UID         = 65532
	ServePort   = 8000
	PausePath   = "/pause"
	PauseUID    = 65535
	PauseTag    = "3.10"
	labelPrefix = "org.opencontainers.image."
)

// MeridianInputs are the host files the meridian image is made of.
type MeridianInputs struct {
	// Base is the root of the extracted Debian packages (libc6, libstdc++6,
	// libgcc-s1, gcc-12-base: scripts/image-base.lock) that meridian and
	// ONNX Runtime link against.
	Base string
	// Binary is bin/meridian, ORTLib libonnxruntime.so.1, Models the model
	// repository (models/).
	Binary, ORTLib, Models string
	// Version, Revision and Source become the OCI labels.
	Version, Revision, Source string
	// Created is the image's creation time; FileTime every file's time
	// stamp (zero: Created).
	Created, FileTime time.Time
}

// MeridianSpec is the meridian image: the Debian base with /etc/passwd,
// /etc/group (user meridian, 65532:65532) and /tmp, then ONNX Runtime, the
// models and the binary, each its own layer so a new binary reuses the
// others. It runs `meridian serve --listen :8000 --models /models` as
// 65532:65532 with MERIDIAN_ORT_LIB pointing at the library; meridian is
// on PATH, so a Kubernetes container with command ["meridian"] works too.
func MeridianSpec(in MeridianInputs) (Spec, error) {
	base, err := Tree(in.Base, "/")
	if err != nil {
		return Spec{}, fmt.Errorf("reading the image base (run scripts/fetch-debs.sh): %w", err)
	}
	base = append(base, Accounts(User, UID, UID)...)
	base = append(base, Dir("/tmp", fs.ModeSticky|0o777))
	models, err := Tree(in.Models, ModelsPath)
	if err != nil {
		return Spec{}, fmt.Errorf("reading the model repository: %w", err)
	}
	return Spec{
		Created:  in.Created,
		FileTime: in.FileTime,
		Config: Config{
			User: fmt.Sprintf("%d:%d", UID, UID),
			Env: []string{
				"PATH=/usr/local/bin:/usr/bin:/bin",
				"MERIDIAN_ORT_LIB=" + ORTLibPath,
			},
			WorkingDir:   "/",
			Entrypoint:   []string{BinaryPath},
			Cmd:          []string{"serve", "--listen", fmt.Sprintf(":%d", ServePort), "--models", ModelsPath},
			ExposedPorts: []string{fmt.Sprintf("%d/tcp", ServePort)},
			Labels: map[string]string{
				labelPrefix + "source":   in.Source,
				labelPrefix + "version":  in.Version,
				labelPrefix + "revision": in.Revision,
				labelPrefix + "title":    "meridian",
			},
		},
		Layers: []Layer{
			{Comment: "debian base (scripts/image-base.lock), /etc/passwd, /etc/group, /tmp", Entries: base},
			{Comment: "onnx runtime " + ORTLibPath, Entries: []Entry{File(ORTLibPath, in.ORTLib, 0o644)}},
			{Comment: "models " + ModelsPath, Entries: models},
			{Comment: "meridian " + in.Version, Entries: []Entry{File(BinaryPath, in.Binary, 0o755)}},
		},
	}, nil
}

// PauseSpec is the Kubernetes sandbox ("pause") image: one layer holding
// the static binary at /pause, run as 65535:65535.
func PauseSpec(binary string, created, fileTime time.Time) Spec {
	return Spec{
		Created:  created,
		FileTime: fileTime,
		Config: Config{
			User:       fmt.Sprintf("%d:%d", PauseUID, PauseUID),
			WorkingDir: "/",
			Entrypoint: []string{PausePath},
			Labels:     map[string]string{labelPrefix + "title": "pause", labelPrefix + "version": PauseTag},
		},
		Layers: []Layer{{Comment: "pause " + PauseTag, Entries: []Entry{File(PausePath, binary, 0o755)}}},
	}
}
