package image

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// synthetic writes small stand-ins for the meridian image's inputs.
func synthetic(t *testing.T) MeridianInputs {
	t.Helper()
	dir := t.TempDir()
	write := func(rel, content string, perm os.FileMode) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), perm); err != nil {
			t.Fatal(err)
		}
	}
	write("base/lib/x86_64-linux-gnu/libc.so.6", "libc", 0o755)
	write("base/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30", "libstdc++", 0o644)
	if err := os.Symlink("libstdc++.so.6.0.30", filepath.Join(dir, "base/usr/lib/x86_64-linux-gnu/libstdc++.so.6")); err != nil {
		t.Fatal(err)
	}
	write("meridian", "#!/bin/sh\necho meridian\n", 0o700)
	write("libonnxruntime.so.1", "ort", 0o600)
	write("models/sentiment/config.yaml", "name: sentiment\n", 0o600)
	write("models/sentiment/1/model.onnx", "onnx", 0o664)
	return MeridianInputs{
		Base:     filepath.Join(dir, "base"),
		Binary:   filepath.Join(dir, "meridian"),
		ORTLib:   filepath.Join(dir, "libonnxruntime.so.1"),
		Models:   filepath.Join(dir, "models"),
		Version:  "v0.0.1-test",
		Revision: "0123456789abcdef",
		Source:   "https://meridian.dev/meridian",
		Created:  time.Unix(1700000000, 0),
	}
}

func build(t *testing.T, in MeridianInputs) v1.Image {
	t.Helper()
	spec, err := MeridianSpec(in)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func digest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBuildIsReproducible(t *testing.T) {
	in := synthetic(t)
	first, second := digest(t, build(t, in)), digest(t, build(t, in))
	if first != second {
		t.Fatalf("two builds of the same inputs differ: %s and %s", first, second)
	}
	// A copy of the inputs elsewhere, with other host modes, builds the same image.
	moved := synthetic(t)
	if err := os.Chmod(moved.Binary, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := digest(t, build(t, moved)); got != first {
		t.Fatalf("the same inputs in another directory built %s, want %s", got, first)
	}

	changes := map[string]func(in *MeridianInputs){
		"binary content": func(in *MeridianInputs) {
			if err := os.WriteFile(in.Binary, []byte("#!/bin/sh\necho other\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		},
		"model file": func(in *MeridianInputs) {
			if err := os.WriteFile(filepath.Join(in.Models, "sentiment/1/model.onnx"), []byte("onnx2"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"time":      func(in *MeridianInputs) { in.Created = in.Created.Add(time.Second) },
		"file time": func(in *MeridianInputs) { in.FileTime = time.Unix(1, 0) },
		"version":   func(in *MeridianInputs) { in.Version = "v0.0.2" },
	}
	for what, change := range changes {
		changed := synthetic(t)
		change(&changed)
		if got := digest(t, build(t, changed)); got == first {
			t.Errorf("changing the %s did not change the digest %s", what, got)
		}
	}
}

// A new binary and time with a fixed file time leave the other layers as
// they were, so nodes need not pull them again.
func TestUnchangedLayersKeepTheirDigests(t *testing.T) {
	in := synthetic(t)
	in.FileTime = time.Unix(0, 0)
	before := layerDigests(t, build(t, in))
	if err := os.WriteFile(in.Binary, []byte("#!/bin/sh\necho v2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	in.Created, in.Version = in.Created.Add(time.Hour), "v0.0.2"
	after := layerDigests(t, build(t, in))
	if !slices.Equal(before[:3], after[:3]) || before[3] == after[3] {
		t.Errorf("layers before %v, after a new binary %v: want the first three equal, the binary's changed", before, after)
	}
}

func layerDigests(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var ds []v1.Hash
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	return ds
}

func TestMeridianImageConfig(t *testing.T) {
	img := build(t, synthetic(t))
	if mt, err := img.MediaType(); err != nil || mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %q (%v), want %q", mt, err, types.OCIManifestSchema1)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("config media type %q, want %q", m.Config.MediaType, types.OCIConfigJSON)
	}
	for _, l := range m.Layers {
		if l.MediaType != types.OCILayer {
			t.Errorf("layer media type %q, want %q", l.MediaType, types.OCILayer)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" || c.WorkingDir != "/" {
		t.Errorf("user %q, working dir %q", c.User, c.WorkingDir)
	}
	if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/meridian"}) {
		t.Errorf("entrypoint %q", c.Entrypoint)
	}
	if !slices.Equal(c.Cmd, []string{"serve", "--listen", ":8000", "--models", "/models"}) {
		t.Errorf("cmd %q", c.Cmd)
	}
	if !slices.Equal(c.Env, []string{"PATH=/usr/local/bin:/usr/bin:/bin", "MERIDIAN_ORT_LIB=/usr/lib/meridian/libonnxruntime.so.1"}) {
		t.Errorf("env %q", c.Env)
	}
	if _, ok := c.ExposedPorts["8000/tcp"]; !ok || len(c.ExposedPorts) != 1 {
		t.Errorf("exposed ports %v", c.ExposedPorts)
	}
	if c.Labels["org.opencontainers.image.version"] != "v0.0.1-test" || c.Labels["org.opencontainers.image.revision"] != "0123456789abcdef" ||
		c.Labels["org.opencontainers.image.source"] == "" {
		t.Errorf("labels %v", c.Labels)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || !cf.Created.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("os %q, architecture %q, created %v", cf.OS, cf.Architecture, cf.Created)
	}
	if len(cf.RootFS.DiffIDs) != 4 || len(cf.History) != 4 {
		t.Errorf("%d diff IDs and %d history entries, want 4 layers", len(cf.RootFS.DiffIDs), len(cf.History))
	}
}

// file is what a layer's tar says about one entry.
type file struct {
	mode     int64
	uid, gid int
	typ      byte
	link     string
	content  string
	mtime    time.Time
}

// contents reads every layer of img, in order, keyed by path.
func contents(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]file{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		var names []string
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, h.Name)
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files["/"+strings.TrimSuffix(h.Name, "/")] = file{h.Mode, h.Uid, h.Gid, h.Typeflag, h.Linkname, string(b), h.ModTime}
			if h.Uname != "" || h.Gname != "" {
				t.Errorf("%s has owner names %q/%q", h.Name, h.Uname, h.Gname)
			}
		}
		_ = rc.Close()
		if !slices.IsSorted(names) {
			t.Errorf("layer entries are not sorted: %q", names)
		}
	}
	return files
}

func TestMeridianImageContents(t *testing.T) {
	files := contents(t, build(t, synthetic(t)))
	want := map[string]struct {
		mode int64
		typ  byte
	}{
		"/usr/local/bin/meridian":                       {0o755, tar.TypeReg},
		"/usr/local/bin":                                {0o755, tar.TypeDir},
		"/usr/lib/meridian/libonnxruntime.so.1":         {0o644, tar.TypeReg},
		"/models/sentiment/config.yaml":                 {0o644, tar.TypeReg},
		"/models/sentiment/1/model.onnx":                {0o644, tar.TypeReg},
		"/lib/x86_64-linux-gnu/libc.so.6":               {0o755, tar.TypeReg},
		"/usr/lib/x86_64-linux-gnu/libstdc++.so.6":      {0o777, tar.TypeSymlink},
		"/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30": {0o644, tar.TypeReg},
		"/etc/passwd":                                   {0o644, tar.TypeReg},
		"/etc/group":                                    {0o644, tar.TypeReg},
		"/tmp":                                          {0o1777, tar.TypeDir},
		"/models":                                       {0o755, tar.TypeDir},
	}
	for p, w := range want {
		f, ok := files[p]
		if !ok {
			t.Errorf("%s missing from the image", p)
			continue
		}
		if f.mode != w.mode || f.typ != w.typ {
			t.Errorf("%s: mode %o type %q, want %o %q", p, f.mode, f.typ, w.mode, w.typ)
		}
	}
	for p, f := range files {
		if f.uid != 0 || f.gid != 0 {
			t.Errorf("%s owned by %d:%d, want 0:0", p, f.uid, f.gid)
		}
		if !f.mtime.Equal(time.Unix(1700000000, 0)) {
			t.Errorf("%s has time %v, want the image time", p, f.mtime)
		}
	}
	if l := files["/usr/lib/x86_64-linux-gnu/libstdc++.so.6"].link; l != "libstdc++.so.6.0.30" {
		t.Errorf("libstdc++.so.6 links to %q", l)
	}
	if c := files["/usr/local/bin/meridian"].content; c != "#!/bin/sh\necho meridian\n" {
		t.Errorf("meridian holds %q", c)
	}
	if !strings.Contains(files["/etc/passwd"].content, "\nmeridian:x:65532:65532:") {
		t.Errorf("/etc/passwd lacks the meridian user:\n%s", files["/etc/passwd"].content)
	}
	if !strings.Contains(files["/etc/group"].content, "\nmeridian:x:65532:") {
		t.Errorf("/etc/group lacks the meridian group:\n%s", files["/etc/group"].content)
	}
}

func TestPauseImage(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(bin, []byte("pause"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := Build(PauseSpec(bin, time.Unix(0, 0), time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65535:65535" || !slices.Equal(cf.Config.Entrypoint, []string{"/pause"}) {
		t.Errorf("user %q entrypoint %q", cf.Config.User, cf.Config.Entrypoint)
	}
	files := contents(t, img)
	if f := files["/pause"]; len(files) != 1 || f.mode != 0o755 || f.content != "pause" {
		t.Errorf("pause layer holds %v", files)
	}
}

func TestNewLayerRejects(t *testing.T) {
	for name, entries := range map[string][]Entry{
		"relative path":  {{Path: "etc/passwd"}},
		"duplicate path": {{Path: "/a", Data: []byte("1")}, {Path: "/a/", Data: []byte("2")}},
		"root":           {Dir("/", 0o755)},
	} {
		if _, err := NewLayer(entries, time.Unix(0, 0)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestLayoutLoad(t *testing.T) {
	img := build(t, synthetic(t))
	bin := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(bin, []byte("pause"), 0o755); err != nil {
		t.Fatal(err)
	}
	pause, err := Build(PauseSpec(bin, time.Unix(0, 0), time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	for range 2 { // a second write replaces the first
		if err := WriteLayout(dir, map[string]v1.Image{"meridian:v0.0.1-test": img, "pause:3.10": pause}); err != nil {
			t.Fatal(err)
		}
	}
	for ref, want := range map[string]v1.Image{"meridian:v0.0.1-test": img, "meridian": img, "pause:3.10": pause} {
		got, err := Load(dir, ref)
		if err != nil {
			t.Fatalf("loading %s: %v", ref, err)
		}
		if digest(t, got) != digest(t, want) {
			t.Errorf("%s loaded as %s, want %s", ref, digest(t, got), digest(t, want))
		}
	}
	if _, err := Load(dir, "meridian:v9"); err == nil || !strings.Contains(err.Error(), "meridian:v0.0.1-test") {
		t.Errorf("loading a missing image: %v, want an error naming what the layout holds", err)
	}
}
