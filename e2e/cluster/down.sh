#!/usr/bin/env bash
# Stops the cluster up.sh started and undoes what it did to the host: stops the pods (so the CNI plugin
# releases their addresses and rules), stops every component by the pid up.sh recorded, unmounts what
# the kubelet and containerd mounted, restores the host's iptables as they were before up.sh, and removes
# the ipsets and the cni0 bridge the cluster created. Safe to run twice, or after a failed up.sh.
#
# The state directory is kept (component logs are in logs/) for inspection; up.sh wipes it.
# MCP_GUARD_CLUSTER_PURGE=1 removes it too.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) == 0 ]] || die "must run as root"
[[ -d $STATE ]] || { log "no cluster state in $STATE: nothing to do"; exit 0; }

# stop NAME: TERM the component we started, wait up to 20 s, then KILL.
stop() {
  local name=$1 pid i
  pid_alive "$name" || { rm -f "$RUN/$name.pid"; return 0; }
  pid="$(cat "$RUN/$name.pid")"
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 40; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$RUN/$name.pid"
}

# 1. Nothing should recreate or reschedule pods while we remove them.
stop kube-controller-manager
stop kube-scheduler

# 2. Remove the pods through the kubelet, so CNI DEL runs for each (IP lease, masquerade rules, veth).
if pid_alive kube-apiserver && pid_alive kubelet; then
  log "deleting all pods"
  kubectl_admin delete pods --all --all-namespaces --grace-period=2 --timeout=60s --wait=true >/dev/null 2>&1 ||
    log "some pods did not go away in time; they are killed below"
fi

stop kube-router
stop kube-proxy
stop kubelet

# 3. Whatever containers are left (a crashed kubelet, a timed-out delete): kill their tasks directly.
if pid_alive containerd; then
  ctr_() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }
  for t in $(ctr_ tasks ls -q 2>/dev/null); do
    ctr_ tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
  done
  sleep 1
  for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$t" >/dev/null 2>&1 || true; done
fi
stop containerd
# The runc shims of our containerd outlive it; they are the processes started with our socket address.
for pid in $(pgrep -f -- "-address $CONTAINERD_SOCK" || true); do
  kill -KILL "$pid" 2>/dev/null || true
done

stop kube-apiserver
stop etcd

# 4. Mounts: pod volumes, container root filesystems and sandbox shm live under the state dir; the
# pods' network namespaces are bind-mounted by containerd under /var/run/netns as cni-<uuid>.
unmount_under "$STATE"
for ns in /var/run/netns/cni-*; do
  [[ -e $ns ]] || continue
  umount "$ns" 2>/dev/null || true
  rm -f "$ns"
done
# libcni's result cache for our network name.
rm -f /var/lib/cni/results/mcp-guard-* 2>/dev/null || true

# 5. The firewall back to what it was before up.sh: flush every table (kube-proxy, kube-router and the
# CNI masquerade rules), then restore the saved rules. Sets can be destroyed only once no rule uses them.
# restore_firewall IPTABLES SAVED_FILE: flush and delete every chain of every table, then restore.
restore_firewall() {
  local cmd=$1 saved=$2 t
  [[ -f $saved ]] || return 0
  log "restoring $cmd rules"
  for t in filter nat mangle raw; do
    "$cmd" -t "$t" -F 2>/dev/null || true
    "$cmd" -t "$t" -X 2>/dev/null || true
  done
  "$cmd-restore" <"$saved"
}
restore_firewall iptables "$STATE/iptables.before"
# kube-proxy also writes IPv6 chains when the kernel has IPv6.
restore_firewall ip6tables "$STATE/ip6tables.before"
if [[ -f $STATE/ipsets.before ]]; then
  comm -13 "$STATE/ipsets.before" <(ipset list -n 2>/dev/null | sort) | while read -r s; do
    ipset destroy "$s" 2>/dev/null || log "could not destroy ipset $s"
  done
fi

# 6. The bridge the CNI plugin created (its veths went with the pods' network namespaces).
ip link show cni0 >/dev/null 2>&1 && ip link delete cni0

# 7. The kubelet's pod cgroups (empty now), deepest first.
for root in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
  [[ -d $root ]] || continue
  find "$root" -depth -type d -exec rmdir {} \; 2>/dev/null || true
done

if [[ ${MCP_GUARD_CLUSTER_PURGE:-0} == 1 ]]; then
  rm -rf --one-file-system "$STATE"
  log "cluster down; state removed"
else
  log "cluster down; logs kept in $LOGS"
fi
