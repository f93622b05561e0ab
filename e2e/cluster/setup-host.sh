#!/usr/bin/env bash
# Prepares this host (Debian 12, root) to run the real single-node test cluster:
# installs the node runtime and networking tools from Debian when they are missing, and sets the kernel
# switches a Kubernetes node needs. Idempotent: a second run changes nothing and takes a second.
#
# Why Debian's packages: only package registries are reachable here, and Debian ships containerd 1.6,
# runc and the CNI reference plugins (bridge, host-local, loopback, portmap in /usr/lib/cni), which are
# all a kubelet 1.34 node needs. The Kubernetes binaries themselves come from build.sh.
set -euo pipefail

log() { printf '[setup-host] %s\n' "$*" >&2; }

[[ $(id -u) == 0 ]] || { log "must run as root"; exit 1; }

# package:command pairs; a package is installed only when its command is missing.
#   containerd, runc                 container runtime (CRI) and OCI runtime
#   containernetworking-plugins      CNI bridge, host-local, loopback, portmap
#   iptables, ipset, conntrack       used by kube-proxy (iptables mode; no IPVS in this kernel) and kube-router
#   openssl                          certificates for the control plane (up.sh)
#   iproute2                         `ip`, used by CNI and by up.sh/down.sh
#   socat                            kubectl port-forward needs it on the node for some paths
#   kmod                             modprobe br_netfilter
#   util-linux, procps, mount        nsenter, findmnt, mount, sysctl
#   gcc, libc6-dev                   up.sh builds the static pause binary (gcc -static needs libc.a)
#   busybox-static                   a static busybox: up.sh packs it as the test client/server image
PKGS=(
  containerd:containerd
  runc:runc
  containernetworking-plugins:/usr/lib/cni/bridge
  iptables:iptables
  ipset:ipset
  conntrack:conntrack
  openssl:openssl
  iproute2:ip
  socat:socat
  kmod:modprobe
  util-linux:nsenter
  procps:sysctl
  mount:mount
  ca-certificates:update-ca-certificates
  gcc:gcc
  libc6-dev:/usr/lib/x86_64-linux-gnu/libc.a
  busybox-static:/bin/busybox
)

missing=()
for pc in "${PKGS[@]}"; do
  pkg=${pc%%:*} cmd=${pc#*:}
  if [[ $cmd == /* ]]; then [[ -e $cmd ]] && continue; else command -v "$cmd" >/dev/null 2>&1 && continue; fi
  missing+=("$pkg")
done

if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends: containerd recommends nothing we need; keeps the install small and fast.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "all packages present"
fi

# Debian's containerd package starts its service through systemd/init scripts on install; this machine
# has no systemd as PID 1, and up.sh runs containerd itself with its own config, so nothing else to do.

# Pods reach each other and services through the host's routing: forwarding must be on (it starts at 0).
if [[ $(sysctl -n net.ipv4.ip_forward) != 1 ]]; then
  sysctl -qw net.ipv4.ip_forward=1
  log "net.ipv4.ip_forward=1"
fi

# kube-proxy and kube-router filter bridged pod traffic with iptables: that needs br_netfilter.
if [[ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ]]; then
  modprobe br_netfilter || { log "cannot load br_netfilter"; exit 1; }
  log "loaded br_netfilter"
fi
if [[ $(sysctl -n net.bridge.bridge-nf-call-iptables) != 1 ]]; then
  sysctl -qw net.bridge.bridge-nf-call-iptables=1
fi

# kube-proxy in iptables mode marks and masquerades; it wants route_localnet for NodePorts on 127.0.0.1.
sysctl -qw net.ipv4.conf.all.route_localnet=1 || true

log "host ready: $(containerd --version 2>/dev/null | awk '{print $1, $3}'), $(runc --version | head -1), $(iptables --version)"
