#!/usr/bin/env bash
# Checks that the cluster up.sh started really works end to end, with a locally imported image:
#   pods schedule and run (containerd + pause sandbox + bridge CNI), kubectl exec and logs work
#   (apiserver -> kubelet), pod-to-pod traffic, Service ClusterIP traffic (kube-proxy), cluster DNS
#   (CoreDNS behind kube-dns: full and short Service names, its query log, no answer from outside), and
#   NetworkPolicy enforcement (kube-router): deny-all blocks, an allow rule for one label lets that client
#   in again, and DNS still works under an egress policy that opens only kube-system port 53.
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

# Cluster DNS. busybox's nslookup asks the pod's nameserver (the kubelet's clusterDNS) itself; wget
# resolves through libc's getaddrinfo with the pod's search path and ndots, as applications do.
# resolves CLIENT NAME IP: NAME resolves to IP from inside CLIENT (the answer section, after "Name:").
resolves() {
  k exec "$1" -- timeout 5 nslookup "$2" 2>/dev/null | sed -n '/^Name:/,$p' | grep -qxF "Address: $3"
}
dns_conf() { k exec other-client -- cat /etc/resolv.conf 2>/dev/null | grep -qx "nameserver $CLUSTER_DNS_IP"; }
check "DNS: pods get nameserver $CLUSTER_DNS_IP (kubelet clusterDNS)" dns_conf
check "DNS: kubernetes.default.svc.$CLUSTER_DOMAIN -> $FIRST_SERVICE_IP (CoreDNS)" \
  eventually 10 resolves other-client "kubernetes.default.svc.$CLUSTER_DOMAIN" "$FIRST_SERVICE_IP"
# Bounded waits: an earlier run's Service of the same name may still be cached (CoreDNS's TTL is 5 s).
check "DNS: server.$NS.svc.$CLUSTER_DOMAIN -> $SVC_IP" \
  eventually 10 resolves other-client "server.$NS.svc.$CLUSTER_DOMAIN" "$SVC_IP"
check "DNS: short name through the search path: HTTP to http://server/ (libc resolver)" \
  eventually 10 reaches other-client "http://server/"
# A name only this run asks for, found again in CoreDNS's query log (the `log` plugin).
MARKER="smoke-marker-$$-$RANDOM.$NS.svc.$CLUSTER_DOMAIN"
k exec other-client -- timeout 5 nslookup "$MARKER" >/dev/null 2>&1 || true # NXDOMAIN, as it should
coredns_logged() { kubectl_admin -n kube-system logs deployment/coredns 2>/dev/null | grep -qF "\"A IN $MARKER. "; }
check "DNS: CoreDNS's log shows the query for $MARKER" eventually 10 coredns_logged
# No upstream: a name outside the cluster gets an error (SERVFAIL) at once, never an answer or a hang.
outside_fails_fast() {
  local out
  out="$(k exec other-client -- sh -c 'timeout 3 nslookup example.com; echo rc=$?' 2>&1 || true)"
  [[ $out == *rc=1* && $out != *Name:* ]] && [[ $out == *SERVFAIL* || $out == *NXDOMAIN* ]]
}
check "DNS: example.com fails at once (no forwarding out of the cluster)" outside_fails_fast

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

# The egress rule MCP Guard's executor policies use for DNS: kube-system pods, port 53 (NetworkPolicy
# sees CoreDNS's pod port, after kube-proxy's translation of the kube-dns Service address).
k apply -f - >/dev/null <<'EOF'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-egress-dns-only}
spec:
  podSelector: {matchLabels: {role: client}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]
    ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
EOF
check "NetworkPolicy egress to kube-system:53 only: HTTP blocked" eventually 20 blocked allowed-client "http://$SERVER_IP:8080/"
check "NetworkPolicy egress to kube-system:53 only: DNS still resolves" \
  resolves allowed-client "server.$NS.svc.$CLUSTER_DOMAIN" "$SVC_IP"

kubectl_admin delete namespace "$NS" --wait=true --timeout=60s >/dev/null || log "namespace $NS not gone yet"
echo "smoke: $passed passed, $failed failed"
((failed == 0))
