#!/usr/bin/env bash
# Packs a directory into a single-layer container image, as a docker-archive tarball, without Docker.
#
# Usage: pack-image.sh [-o OUT.tar] [--import CONTAINERD_SOCKET] NAME:TAG ROOTFS_DIR ENTRYPOINT [ARG...]
#
#   NAME:TAG      image reference, e.g. mcp-guard.local/pause:3.10. Use a name with a domain and a tag
#                 other than `latest`, so the kubelet's default pull policy is IfNotPresent and the
#                 locally imported image is used as is (nothing can be pulled here).
#   ROOTFS_DIR    its whole content becomes the image's root filesystem (owned by root in the image).
#                 Put static binaries there (Go with CGO_ENABLED=0, Rust with -C target-feature=+crt-static,
#                 C with gcc -static): the image has no libc.
#   ENTRYPOINT    absolute path inside the image, plus optional arguments.
#   -o OUT.tar    where to write the tarball (default: ./<name>_<tag>.tar, with / and : turned into _).
#   --import SOCK also import it into containerd's k8s.io namespace (the one the kubelet's CRI uses).
#
# Why this format: a docker-archive (manifest.json + image config JSON + uncompressed layer tar) is what
# `ctr images import` reads and the simplest image format to write by hand. The layer tar is made
# reproducible (sorted names, fixed mtime, numeric root ownership), so the same input gives the same
# image ID.
set -euo pipefail

usage() { sed -n '3,20p' "$0" >&2; exit 2; }

out="" import_sock=""
while (($#)); do
  case "$1" in
    -o) out=$2; shift 2 ;;
    --import) import_sock=$2; shift 2 ;;
    -h | --help) usage ;;
    *) break ;;
  esac
done
(($# >= 3)) || usage
ref=$1 rootfs=$2
shift 2
[[ -d $rootfs ]] || { echo "not a directory: $rootfs" >&2; exit 1; }
[[ $ref == *:* ]] || { echo "image reference needs a tag: $ref" >&2; exit 1; }
[[ $1 == /* ]] || { echo "entrypoint must be an absolute path in the image: $1" >&2; exit 1; }
[[ -n $out ]] || out="./$(echo "$ref" | tr '/:' '__').tar"

# json_str S: S as a JSON string (escapes backslash, double quote and control characters we may meet).
json_str() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\t'/\\t}
  s=${s//$'\n'/\\n}
  printf '"%s"' "$s"
}
# json_array ARG...: ["a","b",...]
json_array() {
  local first=1 a
  printf '['
  for a in "$@"; do
    ((first)) || printf ','
    first=0
    json_str "$a"
  done
  printf ']'
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The layer: the directory's content at the image root, reproducible, owned by root.
tar --sort=name --mtime='@0' --owner=0 --group=0 --numeric-owner --format=gnu \
  -C "$rootfs" -cf "$work/layer.tar" .
diff_id="sha256:$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"
layer_dir="${diff_id#sha256:}"
mkdir "$work/$layer_dir"
mv "$work/layer.tar" "$work/$layer_dir/layer.tar"

# The image config (OCI image spec's config, which docker-archive uses as is).
cat >"$work/config.json" <<EOF
{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z",
 "config":{"Entrypoint":$(json_array "$@"),"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"WorkingDir":"/"},
 "rootfs":{"type":"layers","diff_ids":["$diff_id"]},
 "history":[{"created":"1970-01-01T00:00:00Z","created_by":"e2e/cluster/pack-image.sh"}]}
EOF
config_id="$(sha256sum "$work/config.json" | cut -d' ' -f1)"
mv "$work/config.json" "$work/$config_id.json"

cat >"$work/manifest.json" <<EOF
[{"Config":"$config_id.json","RepoTags":[$(json_str "$ref")],"Layers":["$layer_dir/layer.tar"]}]
EOF

tar --sort=name --mtime='@0' --owner=0 --group=0 --numeric-owner -C "$work" -cf "$out" \
  manifest.json "$config_id.json" "$layer_dir"
echo "packed $ref -> $out (image id sha256:$config_id)" >&2

if [[ -n $import_sock ]]; then
  # ctr unpacks the layer into the overlayfs snapshotter on import, so the CRI can run it at once.
  ctr --address "$import_sock" -n k8s.io images import "$out" >&2
  echo "imported $ref into containerd at $import_sock (namespace k8s.io)" >&2
fi
