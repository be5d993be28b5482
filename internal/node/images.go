package node

import (
	"context"
	"fmt"
	"net"

	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"

	"meridian.dev/meridian/internal/image"
)

// ImageDomain is the registry name local nodes pull Meridian's images
// under; an in-process registry (ServeImages) stands behind it.
const ImageDomain = "meridian.local"

// Images are Meridian's image and the pause image, served to local nodes.
type Images struct {
	// Meridian is the reference of Meridian's image by digest.
	Meridian string
	// Pause is the reference of the sandbox image (Options.PauseImage).
	Pause string
	// Mirrors send ImageDomain to the registry (Options.Mirrors).
	Mirrors map[string]string
}

// ServeImages serves the meridian and pause images of the OCI layout that
// `make image` writes (.cache/image/meridian) from an in-process registry
// on loopback until ctx ends: nodes pull them by digest, as from any
// registry, and nothing is pulled from the internet.
func ServeImages(ctx context.Context, layout string) (Images, error) {
	images := map[string]ggcrv1.Image{}
	for ref, as := range map[string]string{"meridian": "meridian:local", "pause": "pause:3.10"} {
		img, err := image.Load(layout, ref)
		if err != nil {
			return Images{}, fmt.Errorf("%w: run `make image`", err)
		}
		images[as] = img
	}
	digest, err := images["meridian:local"].Digest()
	if err != nil {
		return Images{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Images{}, fmt.Errorf("image registry: %w", err)
	}
	go func() { _ = image.ServeRegistry(ctx, ln, images) }()
	return Images{
		Meridian: ImageDomain + "/meridian@" + digest.String(),
		Pause:    ImageDomain + "/pause:3.10",
		Mirrors:  map[string]string{ImageDomain: ln.Addr().String()},
	}, nil
}
