// Package image builds Meridian's OCI container images without Docker, and
// serves them to container runtimes without a public registry.
//
// An image is a list of layers, each a list of Entry values (files copied
// from the host, files from bytes, directories, symlinks), plus a Config
// (user, entrypoint, command, environment, ports, labels). NewLayer writes a
// layer reproducibly: entries sorted by path, missing parent directories
// added, owners uid/gid 0 unless the entry says otherwise, every time stamp
// set to one given time, file modes normalised to 0644/0755 for trees read
// from the host, and gzip output that does not depend on the clock. Build
// assembles the layers into an image with OCI media types (manifest, config
// and layers), so the digest computed here is the digest a registry and
// containerd store after a pull. The same inputs give the same digest;
// tools/buildimage (`make image`) uses this to build the meridian and pause
// images into an OCI image layout with WriteLayout.
//
// Load reads one image back from such a layout by its reference name
// (org.opencontainers.image.ref.name, e.g. "meridian:v0.3.0"), ServeRegistry
// serves images from an in-memory registry (go-containerregistry's
// pkg/registry) on a listener, for a local fleet's containerd to pull from,
// and Push writes an image to any registry reachable over plain HTTP.
package image
