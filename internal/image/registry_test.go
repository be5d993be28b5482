package image

import (
	"context"
	"net"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestServeRegistryPushPull(t *testing.T) {
	img := build(t, synthetic(t))
	want := digest(t, img)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- ServeRegistry(ctx, ln, map[string]v1.Image{"meridian:v0.0.1-test": img}) }()
	host := ln.Addr().String()

	// Preloaded, by tag.
	tag, err := name.NewTag(host+"/meridian:v0.0.1-test", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(tag, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("pulling the preloaded image by tag: %v", err)
	}
	if d := digest(t, got); d != want {
		t.Errorf("preloaded image pulled as %s, want %s", d, want)
	}

	// Pushed, then pulled back by digest, layers included.
	ref, err := Push(ctx, host, "pushed/meridian", img)
	if err != nil {
		t.Fatal(err)
	}
	if ref != host+"/pushed/meridian@"+want.String() {
		t.Errorf("Push returned %q", ref)
	}
	dref, err := name.NewDigest(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	got, err = remote.Image(dref, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("pulling %s: %v", ref, err)
	}
	if d := digest(t, got); d != want {
		t.Errorf("pulled %s, want %s", d, want)
	}
	files := contents(t, got)
	if _, ok := files[BinaryPath]; !ok {
		t.Errorf("the pulled image lacks %s", BinaryPath)
	}

	cancel()
	if err := <-served; err != nil {
		t.Errorf("ServeRegistry: %v", err)
	}
}
