#!/usr/bin/env bash
# Starts a real single-node Kubernetes cluster on this machine, from the binaries build.sh cached:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd (Debian's), kubelet,
# kube-proxy (iptables mode) and kube-router (NetworkPolicy enforcement only), with the CNI bridge plugin;
# then CoreDNS as the cluster DNS, a pod in kube-system behind the kube-dns Service.
#
# Why not kind/k3d/minikube: no Docker engine and no release downloads here. Why each component runs as
# a plain host process: no systemd as PID 1; the flags follow hack/local-up-cluster.sh of Kubernetes.
#
# Usage: e2e/cluster/up.sh          (then: export KUBECONFIG=${MCP_GUARD_CLUSTER_DIR:-/tmp/mcp-guard-cluster}/admin.kubeconfig)
# State (certificates, data, config, every component's log under logs/) goes to $MCP_GUARD_CLUSTER_DIR
# (default /tmp/mcp-guard-cluster), which is wiped and recreated by each up. Stop with down.sh.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) == 0 ]] || die "must run as root (containerd, kubelet, iptables)"
[[ -n $NODE_IP ]] || die "cannot tell this machine's address; set MCP_GUARD_NODE_IP"
for b in "$ETCD_BIN/etcd" "$K8S_BIN/kube-apiserver" "$K8S_BIN/kubelet" "$K8S_BIN/kubectl" "$KUBE_ROUTER_BIN/kube-router" \
  "$COREDNS_BIN/coredns"; do
  [[ -x $b ]] || die "missing $b: run e2e/cluster/build.sh first"
done
for c in "${COMPONENTS_START_ORDER[@]}"; do
  pid_alive "$c" && die "$c is already running (pid $(cat "$RUN/$c.pid")): run down.sh first"
done

T0=$(date +%s)
"$CLUSTER_HERE/setup-host.sh"

# A fresh state directory each time: a test cluster starts from nothing. Unmount first (leftovers of a
# crashed run), and never let rm cross into a mount.
[[ $STATE == /?*/?* ]] || die "refusing to wipe state dir '$STATE': use a dedicated directory at least two levels deep"
unmount_under "$STATE"
rm -rf --one-file-system "$STATE"
mkdir -p "$PKI" "$LOGS" "$RUN" "$STATE/etcd" "$STATE/containerd" "$STATE/kubelet" "$STATE/cni/net.d" \
  "$STATE/cni/ipam" "$STATE/pod-logs" "$STATE/images"

# Remember the host's firewall as it was, so down.sh can put it back exactly (kube-proxy, kube-router
# and the CNI bridge's masquerading all add rules; ipsets are kube-router's).
iptables-save >"$STATE/iptables.before"
ip6tables-save >"$STATE/ip6tables.before" 2>/dev/null || rm -f "$STATE/ip6tables.before"
ipset list -n 2>/dev/null | sort >"$STATE/ipsets.before" || true

# ---------------------------------------------------------------------------------------------------
# Certificates. ECDSA P-256 keys: quick to make, accepted by every component.
# ---------------------------------------------------------------------------------------------------
log "certificates for node $NODE_NAME ($NODE_IP)"
openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/ca.key" 2>/dev/null
openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=mcp-guard-test-ca" -days 3650 -sha256 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
  -out "$PKI/ca.crt" 2>/dev/null

# cert NAME SUBJECT EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]: a key pair signed by the CA.
cert() {
  local name=$1 subj=$2 eku=$3 sans=${4:-}
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [[ -z $sans ]] || echo "subjectAltName=$sans"
  } >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 365 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}
cert kube-apiserver "/CN=kube-apiserver" serverAuth \
  "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:$NODE_NAME,IP:127.0.0.1,IP:$FIRST_SERVICE_IP,IP:$NODE_IP"
cert apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client" clientAuth
cert kube-controller-manager "/CN=system:kube-controller-manager" clientAuth
cert kube-scheduler "/CN=system:kube-scheduler" clientAuth
cert admin "/O=system:masters/CN=mcp-guard-admin" clientAuth
cert kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
cert kubelet-serving "/CN=$NODE_NAME" serverAuth "DNS:$NODE_NAME,DNS:localhost,IP:$NODE_IP,IP:127.0.0.1"
cert kube-proxy "/CN=system:kube-proxy" clientAuth
cert kube-router "/CN=system:kube-router" clientAuth
# The apiserver's identity towards aggregated API servers (front proxy); also silences the
# "missing content for CA bundle requestheader-client-ca-file" errors of every component.
cert front-proxy-client "/CN=front-proxy-client" clientAuth
# Service-account tokens are signed with this key pair (RSA: the most widely accepted JWT algorithm).
openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
chmod 600 "$PKI"/*.key

# kubeconfig NAME USER: a kubeconfig for one component, by file paths (certificates stay in pki/).
kubeconfig() {
  local name=$1 user=$2
  cat >"$STATE/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: mcp-guard
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: $PKI/ca.crt
users:
- name: $user
  user:
    client-certificate: $PKI/$name.crt
    client-key: $PKI/$name.key
contexts:
- name: mcp-guard
  context: {cluster: mcp-guard, user: $user}
current-context: mcp-guard
EOF
}
kubeconfig admin mcp-guard-admin
kubeconfig kube-controller-manager system:kube-controller-manager
kubeconfig kube-scheduler system:kube-scheduler
kubeconfig kubelet-client "system:node:$NODE_NAME"
kubeconfig kube-proxy system:kube-proxy
kubeconfig kube-router system:kube-router

# start NAME CMD...: run a component in its own session (so it outlives this script and a terminal
# hang-up), logging to logs/NAME.log, its pid in run/NAME.pid for down.sh.
start() {
  local name=$1
  shift
  log "starting $name"
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}
# must_wait SECONDS WHAT LOGNAME CMD...: wait_until, and on failure show the component's last log lines.
must_wait() {
  local timeout=$1 what=$2 name=$3
  shift 3
  if ! wait_until "$timeout" "$what" "$@"; then
    tail -n 30 "$LOGS/$name.log" >&2 || true
    die "$name did not come up; see $LOGS/$name.log"
  fi
}

# ---------------------------------------------------------------------------------------------------
# Control plane
# ---------------------------------------------------------------------------------------------------
# etcd on loopback only, plain HTTP (nothing else can reach it); --unsafe-no-fsync since a test cluster's
# data is thrown away anyway and fsync dominates apiserver write latency.
start etcd "$ETCD_BIN/etcd" --name mcp-guard --data-dir "$STATE/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster mcp-guard=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
  --unsafe-no-fsync --quota-backend-bytes 2147483648 --log-level warn
must_wait 60 "etcd health" etcd "$ETCD_BIN/etcdctl" --endpoints http://127.0.0.1:2379 endpoint health

start kube-apiserver "$K8S_BIN/kube-apiserver" \
  --etcd-servers http://127.0.0.1:2379 \
  --bind-address 0.0.0.0 --secure-port 6443 --advertise-address "$NODE_IP" \
  --tls-cert-file "$PKI/kube-apiserver.crt" --tls-private-key-file "$PKI/kube-apiserver.key" \
  --client-ca-file "$PKI/ca.crt" \
  --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --requestheader-client-ca-file "$PKI/ca.crt" --requestheader-allowed-names front-proxy-client \
  --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
  --allow-privileged=true --profiling=false --v=1
must_wait 120 "kube-apiserver /readyz" kube-apiserver kubectl_admin get --raw /readyz

# The apiserver's kubelet client (logs, exec, port-forward) and kube-router need RBAC of their own.
kubectl_admin apply -f - >/dev/null <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: mcp-guard:apiserver-kubelet-client}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:kubelet-api-admin}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: kube-apiserver-kubelet-client}]
---
# From kube-router's own daemonset manifest (generic-kuberouter.yaml), for the firewall controller.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: mcp-guard:kube-router}
rules:
- apiGroups: [""]
  resources: [namespaces, pods, services, nodes, endpoints]
  verbs: [list, get, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [list, get, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, get, watch]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
- apiGroups: [""]
  resources: [services/status]
  verbs: [update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: mcp-guard:kube-router}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: mcp-guard:kube-router}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: system:kube-router}]
EOF

# Cluster DNS: CoreDNS as a Deployment in kube-system behind the kube-dns Service. Created now, so the
# scheduler places it the moment the node is Ready (its image is imported before the kubelet starts);
# up.sh waits for it to be Ready at the very end.
#  - Port: CoreDNS listens on 53 in its pod, as everywhere else, because NetworkPolicy matches the pod's
#    port after the Service's translation: the operator's executor policies (and most "allow DNS" rules)
#    open egress to kube-system on port 53 only, so a pod port 1053 behind Service port 53 would be
#    blocked. It binds 53 as a non-root user with no capability at all (drop ALL) through the pod sysctl
#    net.ipv4.ip_unprivileged_port_start=53: namespaced (this pod's network only) and on the kubelet's
#    safe list. NET_BIND_SERVICE would not work here anyway: containerd 1.6 gives a non-root process no
#    ambient capabilities, and our image's binary carries no file capabilities.
#  - RBAC, least privilege: the kubernetes plugin lists/watches services, endpointslices and namespaces;
#    pods only with `pods verified`, which we do not use (pod A records stay off), so no pod access.
#  - Corefile: no `forward` (nothing upstream, and no lookup may leave the machine): names outside the
#    cluster zones get SERVFAIL at once, and the kubernetes plugin answers NXDOMAIN for the rest of
#    cluster.local and the reverse zones. `log` logs every query (tests grep it). The kubernetes plugin's
#    default TTL of 5 s (not kubeadm's 30) bounds what `cache 30` keeps: tests delete and recreate
#    namespaces and Services under the same names, and must not get the old address for 30 s.
must_wait 30 "namespace kube-system" kube-apiserver kubectl_admin get namespace kube-system
kubectl_admin apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: mcp-guard:coredns}
rules:
- apiGroups: [""]
  resources: [services, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: mcp-guard:coredns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: mcp-guard:coredns}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        health :8080
        ready :8181
        log
        kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa
        cache 30
        loop
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      # The node's resolv.conf (nameserver 127.0.0.1), not itself; CoreDNS never forwards anyway.
      dnsPolicy: Default
      terminationGracePeriodSeconds: 5
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile: {type: RuntimeDefault}
        sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "53"}]
      containers:
      - name: coredns
        image: $COREDNS_IMAGE
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 53, protocol: UDP}
        - {name: dns-tcp, containerPort: 53, protocol: TCP}
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 1}
        livenessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 10, failureThreshold: 5}
        resources:
          requests: {cpu: 50m, memory: 32Mi}
          limits: {memory: 170Mi}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes:
      - name: config
        configMap: {name: coredns, items: [{key: Corefile, path: Corefile}]}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  selector: {k8s-app: kube-dns}
  clusterIP: $CLUSTER_DNS_IP
  ports:
  - {name: dns, port: 53, targetPort: dns, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: dns-tcp, protocol: TCP}
EOF

start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig "$STATE/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig "$STATE/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig "$STATE/kube-controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port 10257 --leader-elect=false \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
  --use-service-account-credentials=true \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --allocate-node-cidrs=true --cluster-cidr "$CLUSTER_CIDR" --node-cidr-mask-size 24 \
  --service-cluster-ip-range "$SERVICE_CIDR" --v=1

start kube-scheduler "$K8S_BIN/kube-scheduler" \
  --kubeconfig "$STATE/kube-scheduler.kubeconfig" \
  --authentication-kubeconfig "$STATE/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig "$STATE/kube-scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port 10259 --leader-elect=false --v=1

# ---------------------------------------------------------------------------------------------------
# Node: containerd, local images, kubelet, CNI, kube-proxy, kube-router
# ---------------------------------------------------------------------------------------------------
# containerd with its own root, state and socket under the state dir, so it never meets another
# containerd on the host. cgroupfs (no systemd here); CNI plugins from Debian's package.
cat >"$STATE/containerd/config.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This machine withholds CAP_SYS_RESOURCE even from root, so runc may not lower oom_score_adj below
  # containerd's own (the kubelet asks -998 for sandboxes; runc then dies with "can't get final child's
  # PID from pipe"). Clamp the value to containerd's own instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
    max_conf_num = 1
EOF
start containerd containerd --config "$STATE/containerd/config.toml"
must_wait 30 "containerd socket" containerd ctr --address "$CONTAINERD_SOCK" version

# Local images: the sandbox (pause) image, and a static busybox (Debian's busybox-static) for test
# clients and servers. Its entrypoint is /bin/busybox, so `args: [sleep, "60"]` or a `command` both work.
log "building and importing $PAUSE_IMAGE, $BUSYBOX_IMAGE and $COREDNS_IMAGE"
mkdir -p "$STATE/images/pause" "$STATE/images/busybox/bin"
gcc -static -Os -s -o "$STATE/images/pause/pause" "$CLUSTER_HERE/images/pause.c"
"$CLUSTER_HERE/pack-image.sh" -o "$STATE/images/pause.tar" --import "$CONTAINERD_SOCK" \
  "$PAUSE_IMAGE" "$STATE/images/pause" /pause
cp /bin/busybox "$STATE/images/busybox/bin/busybox"
for applet in $(/bin/busybox --list); do
  [[ $applet == busybox ]] || ln -sf busybox "$STATE/images/busybox/bin/$applet"
done
"$CLUSTER_HERE/pack-image.sh" -o "$STATE/images/busybox.tar" --import "$CONTAINERD_SOCK" \
  "$BUSYBOX_IMAGE" "$STATE/images/busybox" /bin/busybox
# CoreDNS: the static binary alone (its Corefile comes from a ConfigMap). A hard link when the cache is
# on the same filesystem, so the 75 MB binary is not copied.
mkdir -p "$STATE/images/coredns"
ln "$COREDNS_BIN/coredns" "$STATE/images/coredns/coredns" 2>/dev/null ||
  cp "$COREDNS_BIN/coredns" "$STATE/images/coredns/coredns"
"$CLUSTER_HERE/pack-image.sh" -o "$STATE/images/coredns.tar" --import "$CONTAINERD_SOCK" \
  "$COREDNS_IMAGE" "$STATE/images/coredns" /coredns

# The node's resolv.conf as the kubelet sees it. Only pods with dnsPolicy Default (CoreDNS itself) or
# host networking get it as is: it points at their own loopback, so no lookup may leave the machine.
# Every other pod gets nameserver $CLUSTER_DNS_IP (clusterDNS below) and the cluster search domains.
echo "nameserver 127.0.0.1" >"$STATE/resolv.conf"

cat >"$STATE/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 0.0.0.0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$PKI/kubelet-serving.crt"
tlsPrivateKeyFile: "$PKI/kubelet-serving.key"
containerRuntimeEndpoint: "unix://$CONTAINERD_SOCK"
# No systemd as PID 1, cgroup v1 hierarchies: the cgroupfs driver, and 1.34 still allows cgroup v1.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
# Local images can never be pulled again: never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# Do not evict test pods because the shared disk is fuller than a production node would like.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
resolvConf: "$STATE/resolv.conf"
clusterDNS: ["$CLUSTER_DNS_IP"]
clusterDomain: "$CLUSTER_DOMAIN"
podLogsDir: "$STATE/pod-logs"
serializeImagePulls: false
# How often the kubelet re-syncs each pod, which is when Secret volumes catch up with their Secret (default
# 1m). The executor's Secret volumes are optional: a Secret created after the pod appears there at the next
# sync, and the tests wait for that.
syncFrequency: 10s
rotateCertificates: false
serverTLSBootstrap: false
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
EOF
start kubelet "$K8S_BIN/kubelet" --config "$STATE/kubelet-config.yaml" \
  --kubeconfig "$STATE/kubelet-client.kubeconfig" --root-dir "$STATE/kubelet" \
  --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v=1

# The controller-manager gives the node its pod CIDR once it registers; the bridge CNI config needs it.
node_pod_cidr() { kubectl_admin get node "$NODE_NAME" -o jsonpath='{.spec.podCIDR}' 2>/dev/null | grep -q /; }
must_wait 120 "node $NODE_NAME to register and get a pod CIDR" kubelet node_pod_cidr
POD_CIDR="$(kubectl_admin get node "$NODE_NAME" -o jsonpath='{.spec.podCIDR}')"
log "node pod CIDR $POD_CIDR"

# Bridge CNI: pods on cni0, host-local IPAM (its leases under the state dir), masquerade for traffic
# leaving the pod range, portmap for hostPort. containerd watches conf_dir and picks this up.
cat >"$STATE/cni/net.d/10-mcp-guard.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "mcp-guard",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

cat >"$STATE/kube-proxy-config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$STATE/kube-proxy.kubeconfig"}
# No IP_VS in this kernel: iptables mode.
mode: iptables
clusterCIDR: "$CLUSTER_CIDR"
hostnameOverride: "$NODE_NAME"
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the host's conntrack table size alone.
conntrack: {maxPerCore: 0}
EOF
start kube-proxy "$K8S_BIN/kube-proxy" --config "$STATE/kube-proxy-config.yaml" --v=1

# kube-router only enforces NetworkPolicy (iptables + ipset); routing, service proxy and CNI stay ours.
start kube-router "$KUBE_ROUTER_BIN/kube-router" --kubeconfig "$STATE/kube-router.kubeconfig" \
  --run-firewall=true --run-router=false --run-service-proxy=false --enable-cni=false \
  --hostname-override "$NODE_NAME" --metrics-port 0 --health-port 20244 -v 1

must_wait 120 "node $NODE_NAME Ready" kubelet \
  kubectl_admin wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
# Pods in `default` need its service account, which the controller-manager creates shortly after start.
must_wait 60 "default service account" kube-controller-manager kubectl_admin -n default get serviceaccount default
# Cluster DNS Ready: its readiness probe is CoreDNS's /ready, true once the kubernetes plugin has synced.
if ! kubectl_admin -n kube-system rollout status deployment/coredns --timeout=90s >/dev/null 2>&1; then
  kubectl_admin -n kube-system get pods -l k8s-app=kube-dns -o wide >&2 || true
  kubectl_admin -n kube-system describe pods -l k8s-app=kube-dns 2>/dev/null | sed -n '/^Events:/,$p' >&2 || true
  kubectl_admin -n kube-system logs deployment/coredns --tail=40 >&2 || true
  die "CoreDNS did not become Ready within 90s (its log: $STATE/pod-logs/kube-system_coredns-*)"
fi
log "cluster DNS: CoreDNS Ready behind kube-dns $CLUSTER_DNS_IP"
for c in "${COMPONENTS_START_ORDER[@]}"; do
  pid_alive "$c" || { tail -n 30 "$LOGS/$c.log" >&2; die "$c exited; see $LOGS/$c.log"; }
done

log "cluster up in $(($(date +%s) - T0))s: export KUBECONFIG=$KUBECONFIG_ADMIN"
kubectl_admin get nodes -o wide >&2
