# Shared settings and helpers of up.sh, down.sh and smoke.sh. Sourced, not run.
# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this file

CLUSTER_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$CLUSTER_HERE/versions.env"

# Everything the cluster writes (certificates, data, logs, pid files) lives in one state directory.
STATE="${MCP_GUARD_CLUSTER_DIR:-/tmp/mcp-guard-cluster}"
PKI="$STATE/pki"
LOGS="$STATE/logs"
RUN="$STATE/run"
KUBECONFIG_ADMIN="$STATE/admin.kubeconfig"
CONTAINERD_SOCK="$STATE/containerd/containerd.sock"

CACHE="${MCP_GUARD_CACHE:-$HOME/.cache/mcp-guard}/cluster"
K8S_BIN="$CACHE/kubernetes-$K8S_VERSION/bin"
ETCD_BIN="$CACHE/etcd-$ETCD_VERSION/bin"
HELM_BIN="$CACHE/helm-$HELM_VERSION/bin"
KUBE_ROUTER_BIN="$CACHE/kube-router-$KUBE_ROUTER_VERSION/bin"
COREDNS_BIN="$CACHE/coredns-$COREDNS_VERSION/bin"

# Cluster network layout. Pod and service ranges are private ranges that exist only inside this machine
# (pods live in network namespaces the cluster creates; service IPs are virtual, DNAT'ed by kube-proxy).
SERVICE_CIDR=10.96.0.0/16
FIRST_SERVICE_IP=10.96.0.1
# Cluster DNS: the kube-dns Service (CoreDNS) has this fixed ClusterIP inside SERVICE_CIDR; the kubelet
# hands it to pods as their nameserver (clusterDNS), with search domains under CLUSTER_DOMAIN.
CLUSTER_DNS_IP=10.96.0.10
CLUSTER_DOMAIN=cluster.local
CLUSTER_CIDR=10.244.0.0/16
NODE_NAME="${MCP_GUARD_NODE_NAME:-$(hostname | tr '[:upper:]' '[:lower:]')}"
# The node IP: the address of the interface that carries the default route (this machine's own address),
# unless given. Components and tests only ever talk to it, to 127.0.0.1 and to pod/service addresses.
node_ip_default() {
  local dev
  dev="$(ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1)}' | head -1)"
  [[ -n $dev ]] || dev=lo
  ip -4 -o addr show dev "$dev" | awk '{print $4}' | cut -d/ -f1 | head -1
}
NODE_IP="${MCP_GUARD_NODE_IP:-$(node_ip_default)}"

# Images the cluster imports locally (nothing can be pulled here). Tags are not `latest`, so the
# kubelet's default pull policy is IfNotPresent and never tries a registry.
PAUSE_IMAGE=mcp-guard.local/pause:3.10
BUSYBOX_IMAGE=mcp-guard.local/busybox:1.35
COREDNS_IMAGE="mcp-guard.local/coredns:${COREDNS_VERSION#v}"

COMPONENTS_START_ORDER=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy kube-router)

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

kubectl_admin() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# pid_alive NAME: the component we started under NAME is still running.
pid_alive() {
  local f="$RUN/$1.pid"
  [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

# unmount_under DIR: unmount everything mounted below DIR, deepest first (pod volumes, container
# rootfs overlays, sandbox shm), so that removing DIR can never reach through a mount.
unmount_under() {
  local dir=$1 m
  [[ -d $dir ]] || return 0
  # findmnt lists targets; sort -r puts children before their parents.
  while read -r m; do
    [[ -n $m ]] || continue
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done < <(findmnt -rn -o TARGET | awk -v d="$dir/" 'index($0, d) == 1' | sort -r)
}

# wait_until SECONDS WHAT CMD...: poll CMD every second until it succeeds; on timeout say what failed.
wait_until() {
  local timeout=$1 what=$2 i
  shift 2
  for ((i = 0; i < timeout; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  log "timed out after ${timeout}s waiting for $what"
  return 1
}
