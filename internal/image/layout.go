package image

import (
	"fmt"
	"os"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// RefNameAnnotation names an image in an OCI image layout's index.json.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// WriteLayout writes images, keyed by reference name ("meridian:v0.3.0"),
// into a fresh OCI image layout at dir, replacing what was there. It is
// written beside dir first and renamed into place, so a failed build leaves
// the previous layout intact. The index lists the images in the order of
// their names.
func WriteLayout(dir string, images map[string]v1.Image) error {
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("clearing %s for a new image layout: %w", tmp, err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	p, err := layout.Write(tmp, idx)
	if err != nil {
		return fmt.Errorf("creating the image layout %s: %w", tmp, err)
	}
	names := make([]string, 0, len(images))
	for name := range images {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := p.AppendImage(images[name], layout.WithAnnotations(map[string]string{RefNameAnnotation: name})); err != nil {
			return fmt.Errorf("writing the image %s into the layout %s: %w", name, tmp, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing the old image layout %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("moving the image layout into place at %s: %w", dir, err)
	}
	return nil
}

// Load returns the image named ref in the OCI image layout at dir. ref is a
// full reference name ("meridian:v0.3.0") or just the repository
// ("meridian") when the layout holds one image of that name.
func Load(dir, ref string) (v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("opening the image layout %s: %w (build it with `make image`)", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("reading the index of the image layout %s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading the index of the image layout %s: %w", dir, err)
	}
	var found []v1.Descriptor
	var names []string
	for _, d := range im.Manifests {
		name := d.Annotations[RefNameAnnotation]
		names = append(names, name)
		if name == ref || (!strings.Contains(ref, ":") && strings.HasPrefix(name, ref+":")) {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no image %q in the image layout %s (it holds %s); rebuild it with `make image`", ref, dir, strings.Join(names, ", "))
	case 1:
	default:
		return nil, fmt.Errorf("%d images match %q in the image layout %s (%s); name one with its tag", len(found), ref, dir, strings.Join(names, ", "))
	}
	img, err := idx.Image(found[0].Digest)
	if err != nil {
		return nil, fmt.Errorf("reading the image %q (%s) from the layout %s: %w", ref, found[0].Digest, dir, err)
	}
	return img, nil
}
