package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Entry is one file, directory or symlink of a layer.
type Entry struct {
	// Path is the absolute path inside the image, e.g. /usr/local/bin/meridian.
	Path string
	// Mode holds the permission bits, fs.ModeSetuid/Setgid/Sticky and the
	// type: 0 for a regular file, fs.ModeDir, or fs.ModeSymlink.
	Mode fs.FileMode
	// Source is the host file a regular file's content is read from; when
	// empty, Data is the content.
	Source string
	Data   []byte
	// Target is a symlink's target.
	Target string
	// UID and GID own the entry; files of an image are owned by root (0).
	UID, GID int
}

// File is a regular file at path with the content of the host file source.
func File(path, source string, perm fs.FileMode) Entry {
	return Entry{Path: path, Source: source, Mode: perm}
}

// Dir is a directory at path.
func Dir(path string, perm fs.FileMode) Entry {
	return Entry{Path: path, Mode: fs.ModeDir | perm}
}

// Tree returns the entries for every file, directory and symlink below the
// host directory root, placed under dir in the image (dir itself included
// unless it is /). Regular files get mode 0755 when any execute bit is set
// on the host and 0644 otherwise, directories 0755, so the layer does not
// depend on the host's umask; symlinks keep their targets. Other file types
// (devices, sockets) are an error.
func Tree(root, dir string) ([]Entry, error) {
	var entries []Entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		target := path.Join(dir, filepath.ToSlash(rel))
		if target == "/" {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch mode := info.Mode(); {
		case mode.IsDir():
			entries = append(entries, Dir(target, 0o755))
		case mode&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			entries = append(entries, Entry{Path: target, Mode: fs.ModeSymlink | 0o777, Target: link})
		case mode.IsRegular():
			perm := fs.FileMode(0o644)
			if mode&0o111 != 0 {
				perm = 0o755
			}
			entries = append(entries, File(target, p, perm))
		default:
			return fmt.Errorf("%s is a %v, which an image layer built here cannot hold; remove it", p, mode.Type())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the tree %s for an image layer: %w", root, err)
	}
	return entries, nil
}

// Accounts returns /etc/passwd and /etc/group holding root and one non-root
// user with its own group, whose home is /nonexistent and shell
// /sbin/nologin.
func Accounts(user string, uid, gid int) []Entry {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/nonexistent:/sbin/nologin\n", user, uid, gid, user)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", user, gid)
	return []Entry{
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte(passwd)},
		{Path: "/etc/group", Mode: 0o644, Data: []byte(group)},
	}
}

// NewLayer writes entries as a gzip-compressed OCI layer whose bytes depend
// only on the entries and mtime: entries sorted by path, parent directories
// added (0755, root) where missing, every time stamp mtime, no user or group
// names, and a gzip header without a time or name. Two entries with the same
// path are an error.
func NewLayer(entries []Entry, mtime time.Time) (v1.Layer, error) {
	sorted, err := withParents(entries)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(gz)
	mtime = mtime.UTC().Truncate(time.Second)
	for _, e := range sorted {
		if err := writeEntry(tw, e, mtime); err != nil {
			return nil, fmt.Errorf("writing %s into an image layer: %w", e.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing an image layer's tar stream: %w", err)
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("closing an image layer's gzip stream: %w", err)
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// withParents cleans and sorts the entries and adds the parent directories
// that are missing.
func withParents(entries []Entry) ([]Entry, error) {
	byPath := make(map[string]Entry, len(entries))
	for _, e := range entries {
		if !strings.HasPrefix(e.Path, "/") {
			return nil, fmt.Errorf("image entry path %q is not absolute; start it with /", e.Path)
		}
		e.Path = path.Clean(e.Path)
		if e.Path == "/" {
			return nil, errors.New("an image entry cannot be / itself; the root directory is implied")
		}
		if _, dup := byPath[e.Path]; dup {
			return nil, fmt.Errorf("%s appears twice in one image layer; keep one of them", e.Path)
		}
		byPath[e.Path] = e
	}
	for p := range byPath {
		for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
			if _, ok := byPath[dir]; !ok {
				byPath[dir] = Dir(dir, 0o755)
			}
		}
	}
	sorted := make([]Entry, 0, len(byPath))
	for _, e := range byPath {
		sorted = append(sorted, e)
	}
	slices.SortFunc(sorted, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return sorted, nil
}

// writeEntry writes one entry's header and content.
func writeEntry(tw *tar.Writer, e Entry, mtime time.Time) error {
	hdr := &tar.Header{
		Name:    strings.TrimPrefix(e.Path, "/"),
		Mode:    tarMode(e.Mode),
		Uid:     e.UID,
		Gid:     e.GID,
		ModTime: mtime,
		Format:  tar.FormatPAX,
	}
	switch {
	case e.Mode.IsDir():
		hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
		return tw.WriteHeader(hdr)
	case e.Mode&fs.ModeSymlink != 0:
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.Target
		return tw.WriteHeader(hdr)
	case e.Mode.Type() != 0:
		return fmt.Errorf("unsupported file type %v", e.Mode.Type())
	}
	hdr.Typeflag = tar.TypeReg
	if e.Source == "" {
		hdr.Size = int64(len(e.Data))
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(e.Data)
		return err
	}
	f, err := os.Open(e.Source)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // read only
	st, err := f.Stat()
	if err != nil {
		return err
	}
	hdr.Size = st.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
		return fmt.Errorf("copying %s (did it change while the image was built?): %w", e.Source, err)
	}
	return nil
}

// tarMode converts permission and special bits to the tar header's mode.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}
