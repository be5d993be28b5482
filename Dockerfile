# syntax=docker/dockerfile:1
#
# The meridian image, for users who build with Docker:
#
#   make bin
#   docker build -t meridian:dev \
#     --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg REVISION="$(git rev-parse HEAD)" .
#
# It is equivalent to the image `make image` builds without Docker
# (tools/buildimage): the same Debian packages, pinned and checked against
# scripts/image-base.lock, the same files (bin/meridian, ONNX Runtime, the
# models, /etc/passwd and /etc/group with the user meridian 65532:65532,
# /tmp 1777), the same user, entrypoint, command, environment, port and
# labels. It is NOT byte-identical: Docker writes its own layer tars, time
# stamps and history, so its digest differs from the one `make image` prints
# and only `make image` is reproducible. It leaves out the pause image
# (tools/pause), which only the local fleet needs.
#
# No Docker runs on the machine this was written on, so this file has not
# been built there; `make image` is the tested path.
#
# The build context needs bin/meridian (make bin), .cache/onnxruntime/ and
# models/textdir/1/model.onnx (make deps).

FROM debian:12-slim AS rootfs
COPY scripts/image-base.lock /image-base.lock
RUN set -eu; \
    apt-get update -q; \
    mkdir -p /rootfs /debs; cd /debs; \
    grep -v '^#' /image-base.lock | while read -r pkg version sum; do \
      [ -n "$pkg" ] || continue; \
      apt-get download -q "$pkg:amd64=$version" || { \
        echo "$pkg $version is no longer served by Debian: run 'make image-lock' and commit scripts/image-base.lock" >&2; exit 1; }; \
      echo "$sum  $(ls "${pkg}"_*.deb)" | sha256sum -c - || { \
        echo "$pkg $version does not match its sha256 in scripts/image-base.lock" >&2; exit 1; }; \
      dpkg-deb -x "${pkg}"_*.deb /rootfs; \
    done; \
    mkdir -p /rootfs/etc /rootfs/tmp; \
    chmod 1777 /rootfs/tmp; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nmeridian:x:65532:65532:meridian:/nonexistent:/sbin/nologin\n' >/rootfs/etc/passwd; \
    printf 'root:x:0:\nmeridian:x:65532:\n' >/rootfs/etc/group

FROM scratch
ARG VERSION=dev
ARG REVISION=unknown
COPY --from=rootfs /rootfs/ /
COPY --chmod=0644 .cache/onnxruntime/libonnxruntime.so.1 /usr/lib/meridian/libonnxruntime.so.1
COPY models/ /models/
COPY --chmod=0755 bin/meridian /usr/local/bin/meridian
USER 65532:65532
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    MERIDIAN_ORT_LIB=/usr/lib/meridian/libonnxruntime.so.1
WORKDIR /
EXPOSE 8000/tcp
LABEL org.opencontainers.image.source="https://meridian.dev/meridian" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION" \
      org.opencontainers.image.title="meridian"
ENTRYPOINT ["/usr/local/bin/meridian"]
CMD ["serve", "--listen", ":8000", "--models", "/models"]
