package image

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"meridian.dev/meridian/internal/httpserve"
)

// ServeRegistry serves an in-memory OCI distribution registry (plain HTTP)
// on ln until ctx ends, holding images keyed by "repository:tag" (the
// reference names of a layout: "meridian:v0.3.0", "pause:3.10"). The images
// are stored before the first connection is served, so a client may pull
// ln.Addr()/meridian:v0.3.0, or the same by digest, as soon as ln exists.
// Requests are logged through slog.Default at debug level.
func ServeRegistry(ctx context.Context, ln net.Listener, images map[string]v1.Image) error {
	h := registry.New(registry.Logger(slog.NewLogLogger(slog.Default().Handler(), slog.LevelDebug)))
	names := make([]string, 0, len(images))
	for ref := range images {
		names = append(names, ref)
	}
	slices.Sort(names)
	for _, ref := range names {
		tag, err := name.NewTag("localhost/"+ref, name.Insecure, name.StrictValidation)
		if err != nil {
			return fmt.Errorf("serving the image %q: it is not repository:tag: %w", ref, err)
		}
		if err := remote.Write(tag, images[ref], remote.WithContext(ctx), remote.WithTransport(handlerTransport{h})); err != nil {
			return fmt.Errorf("storing the image %s in the in-memory registry: %w", ref, err)
		}
	}
	// Image layers are hundreds of MB, pulled by nodes at their own pace:
	// no deadline on writing them (idle and header deadlines still hold).
	srv, err := httpserve.New(h, httpserve.Options{Name: "image-registry", WriteTimeout: -1})
	if err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	err = srv.Serve(httpserve.Listener(ln))
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("serving the image registry on %s: %w", ln.Addr(), err)
}

// handlerTransport answers HTTP requests by calling a handler in-process,
// to fill the registry before it listens.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	in := req.Clone(req.Context())
	if in.Body == nil { // a server's request always has a body
		in.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, in)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// Push writes img to the registry at hostPort (plain HTTP, e.g. one started
// with ServeRegistry) as repo, which may carry a tag ("meridian:v0.3.0");
// without one the image is pushed by digest only. It returns the reference
// by digest, hostPort/repo@sha256:…, which is what a runtime should pull.
func Push(ctx context.Context, hostPort, repo string, img v1.Image) (string, error) {
	digest, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("hashing the image to push as %s: %w", repo, err)
	}
	bare, tag, tagged := strings.Cut(repo, ":")
	var ref name.Reference
	if tagged {
		ref, err = name.NewTag(hostPort+"/"+bare+":"+tag, name.Insecure, name.StrictValidation)
	} else {
		ref, err = name.NewDigest(hostPort+"/"+bare+"@"+digest.String(), name.Insecure, name.StrictValidation)
	}
	if err != nil {
		return "", fmt.Errorf("pushing to %s/%s: not an image reference: %w", hostPort, repo, err)
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("pushing the image to %s: %w (is the registry at %s running?)", ref, err, hostPort)
	}
	return fmt.Sprintf("%s/%s@%s", hostPort, bare, digest), nil
}
