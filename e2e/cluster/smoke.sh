#!/usr/bin/env bash
# Checks that the cluster up.sh started really works end to end, with a locally imported image:
#   pods schedule and run (containerd + pause sandbox + bridge CNI), kubectl exec and logs work
#   (apiserver -> kubelet), pod-to-pod traffic, Service ClusterIP traffic (kube-proxy), and NetworkPolicy
#   enforcement (kube-router): deny-all blocks, an allow rule for one label lets that client in again.
# All traffic stays between pods on this machine. Every wait is bounded. Ends with "N passed, N failed".
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NS=mcp-guard-smoke
k() { kubectl_admin -n "$NS" "$@"; }
passed=0 failed=0
check() {
  local what=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    log "PASS $what"
  else
    failed=$((failed + 1))
    log "FAIL $what"
  fi
}

kubectl_admin delete namespace "$NS" --ignore-not-found --wait=true --timeout=60s >/dev/null
kubectl_admin create namespace "$NS" >/dev/null
wait_until 30 "service account in $NS" k get serviceaccount default

k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: server, labels: {app: server}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: $BUSYBOX_IMAGE
    command: [sh, -c, 'mkdir -p /www && echo "hello from \$(hostname)" > /www/index.html && exec httpd -f -p 8080 -h /www']
    ports: [{containerPort: 8080}]
    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: server}
spec:
  selector: {app: server}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: allowed-client, labels: {role: client}}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: $BUSYBOX_IMAGE, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: other-client, labels: {role: other}}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: $BUSYBOX_IMAGE, command: [sleep, "3600"]}]
EOF

check "pods become Ready" k wait --for=condition=Ready pod/server pod/allowed-client pod/other-client --timeout=90s
if ((failed)); then
  # Nothing below means anything without running pods ("blocked" would pass vacuously).
  k get pods -o wide >&2 || true
  k describe pods 2>/dev/null | grep -A12 '^Events:' >&2 || true
  echo "smoke: $passed passed, $failed failed"
  exit 1
fi
SERVER_IP="$(k get pod server -o jsonpath='{.status.podIP}')"
SVC_IP="$(k get service server -o jsonpath='{.spec.clusterIP}')"
log "server pod $SERVER_IP, service $SVC_IP"

# probe CLIENT URL: one bounded HTTP GET from inside a client pod; prints the body (if any) and then
# rc=<wget's exit code>, so a failed `kubectl exec` (no rc= line) is never mistaken for a blocked
# connection. Busybox 1.35's `wget -T` segfaults, so the bound is the `timeout` applet.
probe() { k exec "$1" -- sh -c "timeout 4 wget -q -O - '$2' 2>/dev/null; echo rc=\$?" 2>/dev/null || true; }
reaches() { probe "$1" "$2" | grep -q "hello from server"; }
blocked() {
  local out
  out="$(probe "$1" "$2")"
  [[ $out == *rc=* && $out != *"hello from server"* ]]
}
# eventually SECONDS CMD...: policies take a few seconds to sync; poll, bounded.
eventually() {
  local t=$1 i
  shift
  for ((i = 0; i < t; i++)); do
    "$@" && return 0
    sleep 1
  done
  return 1
}

check "pod-to-pod HTTP (bridge CNI), via kubectl exec" reaches allowed-client "http://$SERVER_IP:8080/"
check "Service ClusterIP HTTP (kube-proxy iptables)" eventually 15 reaches other-client "http://$SVC_IP/"
logs_work() { k logs server >/dev/null; }
check "kubectl logs (apiserver -> kubelet)" logs_work

k apply -f - >/dev/null <<'EOF'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-deny-all}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress]
EOF
check "NetworkPolicy deny-all blocks pod-to-pod (kube-router)" eventually 20 blocked other-client "http://$SERVER_IP:8080/"
check "NetworkPolicy deny-all blocks the Service too" blocked other-client "http://$SVC_IP/"

k apply -f - >/dev/null <<'EOF'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-allow-clients}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {matchLabels: {role: client}}}], ports: [{port: 8080}]}]
EOF
check "NetworkPolicy allow rule lets the labelled client in" eventually 20 reaches allowed-client "http://$SERVER_IP:8080/"
check "NetworkPolicy still blocks the unlabelled client" blocked other-client "http://$SERVER_IP:8080/"

kubectl_admin delete namespace "$NS" --wait=true --timeout=60s >/dev/null || log "namespace $NS not gone yet"
echo "smoke: $passed passed, $failed failed"
((failed == 0))
