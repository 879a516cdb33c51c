// Checks what a rendered kvtier chart means, beyond its API types: selectors match the pod
// labels; Services, probes and NetworkPolicies point at declared ports; probes ask for health
// service names the servers register; shard replicas equal the model's head ranges; shards
// register through a Service that publishes the not-ready coordinator and advertise their
// stable DNS names; GPU limits exactly when enabled; credentials, TLS and metrics flags as the
// values say; every file an arg names is mounted; the helm test fails on errors.
//   KVTIER_CHART_TOOLS=DIR node check_semantics.mjs --namespace=NS [--monitoring] --values=FILE... RENDERED
// --values: the chart's values.yaml, then the set rendered (merged in order, as helm does);
// --namespace: the release's namespace; --monitoring: the render was given the monitoring.coreos.com/v1 API.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { binary, Failures, flag, importTool, kHealth, loadManifests, matches, podTemplates } from './manifests.mjs';

const { load } = await importTool('js-yaml/dist/js-yaml.mjs');

function merge(base, over) {
  if (typeof base !== 'object' || typeof over !== 'object' || !base || !over ||
      Array.isArray(over)) {
    return over === undefined ? base : over;
  }
  const out = { ...base };
  for (const [key, value] of Object.entries(over)) out[key] = merge(base[key], value);
  return out;
}

const args = process.argv.slice(2);
const monitoring = args.includes('--monitoring');
const namespace = args.find((a) => a.startsWith('--namespace='))?.slice('--namespace='.length);
const values = args.filter((a) => a.startsWith('--values='))
  .map((a) => load(readFileSync(a.slice('--values='.length), 'utf8')) ?? {})
  .reduce(merge, {});
const rendered = args.filter((a) => !a.startsWith('--')).at(-1);
const docs = loadManifests(rendered);
const all = docs.map(({ doc }) => doc);
const f = new Failures();

const component = (labels) => labels?.['app.kubernetes.io/component'];
const pods = podTemplates(docs);
const podOf = (name) => pods.find((p) => component(p.labels) === name);
const coordinator = podOf('coordinator');
const shard = podOf('shard');
const smoke = podOf('smoke-load');
const services = all.filter((d) => d.kind === 'Service');
const secrets = all.filter((d) => d.kind === 'Secret');

for (const [name, pod] of Object.entries({ coordinator, shard, smoke })) {
  f.check(pod, `no ${name} pod template rendered`);
}
if (!coordinator || !shard || !smoke) f.exitIfAny('check_semantics');
const clusterDomain = values.clusterDomain;

// Workloads: selectors match their own pods, and only them.
for (const pod of pods) {
  const owner = `${pod.owner.kind} ${pod.owner.metadata.name}`;
  if (pod.owner.kind !== 'Pod') {
    f.check(matches(pod.owner.spec.selector.matchLabels, pod.labels),
            `${owner}: selector ${JSON.stringify(pod.owner.spec.selector)} misses its pod labels`);
    for (const other of pods.filter((p) => p !== pod)) {
      f.check(!matches(pod.owner.spec.selector.matchLabels, other.labels),
              `${owner}: selector also matches ${other.owner.kind} ${other.owner.metadata.name}`);
    }
  }
  const security = pod.podSpec.securityContext ?? {};
  f.check(security.runAsNonRoot === true && security.runAsUser === 10001,
          `${owner}: pod securityContext must run as non-root uid 10001`);
  f.check(pod.podSpec.automountServiceAccountToken === false, `${owner}: mounts an API token`);
  const volumes = new Map((pod.podSpec.volumes ?? []).map((v) => [v.name, v]));
  for (const c of pod.podSpec.containers) {
    const where = `${owner} container ${c.name}`;
    f.check(c.securityContext?.readOnlyRootFilesystem === true, `${where}: root fs not read-only`);
    f.check(c.securityContext?.allowPrivilegeEscalation === false,
            `${where}: allows privilege escalation`);
    f.check(c.resources?.requests && c.resources?.limits?.memory, `${where}: no requests/limits`);
    f.check(!c.command || (c.command.length === 1 && !c.command[0].includes('/')),
            `${where}: command ${JSON.stringify(c.command)}: expected one binary on PATH`);
    // Every file an arg names is in a mounted volume that holds it.
    const mounts = c.volumeMounts ?? [];
    for (const m of mounts) f.check(volumes.has(m.name), `${where}: mounts undeclared ${m.name}`);
    for (const arg of c.args ?? []) {
      const file = /^--\w+_file=(.*)$/.exec(arg)?.[1];
      if (!file) continue;
      const mount = mounts.find((m) => file.startsWith(`${m.mountPath}/`));
      if (!f.check(mount, `${where}: ${arg}: not under any volumeMount`)) continue;
      const volume = volumes.get(mount.name);
      const key = file.slice(mount.mountPath.length + 1);
      const item = volume?.secret?.items?.find((i) => i.path === key);
      if (!f.check(item, `${where}: ${arg}: volume ${mount.name} has no item ${key}`)) continue;
      const secret = secrets.find((s) => s.metadata.name === volume.secret.secretName);
      const existing = [values.auth?.existingSecret, values.tls?.existingSecret];
      f.check(secret ? item.key in { ...secret.data, ...secret.stringData }
                     : existing.includes(volume.secret.secretName),
              `${where}: ${arg}: Secret ${volume.secret.secretName} has no key ${item.key}`);
    }
  }
}

// Probes: at declared ports, asking for names the server registers, readiness on the one that
// means ready, liveness on one that is always SERVING; TCP connects under TLS (kubelet's gRPC
// probes speak plaintext).
for (const pod of [coordinator, shard]) {
  const c = pod.podSpec.containers[0];
  const health = kHealth[binary(c)];
  const ports = c.ports ?? [];
  for (const [kind, names] of [['readinessProbe', health.ready], ['livenessProbe', health.always]]) {
    const probe = c[kind];
    const where = `${pod.owner.metadata.name} ${kind}`;
    if (!f.check(probe, `${where}: missing`)) continue;
    if (values.tls.enabled) {
      f.check(probe.tcpSocket && ports.some((p) => p.containerPort === probe.tcpSocket.port ||
                                                   p.name === probe.tcpSocket.port),
              `${where}: expected a tcpSocket probe on a declared port under TLS`);
      continue;
    }
    f.check(probe.grpc && ports.some((p) => p.containerPort === probe.grpc.port),
            `${where}: grpc port ${probe.grpc?.port} is not a declared containerPort`);
    f.check(names.includes(probe.grpc?.service ?? ''),
            `${where}: service "${probe.grpc?.service}" is not one of ${JSON.stringify(names)}`);
    if (kind === 'readinessProbe') {
      f.check(probe.grpc?.service !== '', `${where}: ask for the service that means ready`);
    }
  }
}

// Services select the intended pods and target ports they declare.
const serviceNamed = (name) => services.find((s) => s.metadata.name === name);
for (const s of services) {
  const selected = pods.filter((p) => p.owner.kind !== 'Pod' && matches(s.spec.selector, p.labels));
  if (!f.check(selected.length === 1, `Service ${s.metadata.name}: selects ${selected.length} workloads`)) continue;
  const ports = selected[0].podSpec.containers.flatMap((c) => c.ports ?? []);
  for (const p of s.spec.ports) {
    f.check(ports.some((cp) => cp.name === p.targetPort || cp.containerPort === p.targetPort),
            `Service ${s.metadata.name} port ${p.name}: targetPort ${p.targetPort} not declared`);
  }
}
// An address host:port resolves to a Service by its DNS name; returns [Service, its port].
function resolve(address, where) {
  const [host, port] = address?.split(':') ?? [];
  const suffix = `.${namespace}.svc.${clusterDomain}`;
  const service = host?.endsWith(suffix) ? serviceNamed(host.slice(0, -suffix.length)) : undefined;
  f.check(service, `${where}: ${address} is not a Service of the release by its full DNS name`);
  const servicePort = service?.spec.ports.find((p) => String(p.port) === port);
  f.check(!service || servicePort, `${where}: Service ${host} has no port ${port}`);
  return [service, servicePort];
}

// Shards: one per head range of the model; they reach the coordinator through a Service that
// publishes it before it is ready, and advertise their stable names.
const modelFlag = flag(coordinator.podSpec.containers[0].args, 'model') ?? '';
const spec = Object.fromEntries(modelFlag.split(',').map((kv) => kv.split('=')));
const m = values.model;
f.check(spec.name === m.name && (spec.version ?? '') === m.version &&
        +spec.layers === m.layers && +spec.kv_heads === m.kvHeads && +spec.q_heads === m.qHeads &&
        +spec.head_dim === m.headDim && spec.dtype === m.dtype &&
        +spec.block_size === m.blockSize && +spec.blocks === m.blocks,
        `coordinator --model=${modelFlag}: not the model of the values ${JSON.stringify(m)}`);
f.check(shard.replicas === +spec.shards && shard.replicas === m.shards,
        `shard replicas ${shard.replicas}: expected the model's ${spec.shards} head ranges`);
const sts = shard.owner;
const headless = serviceNamed(sts.spec.serviceName);
f.check(headless?.spec.clusterIP === 'None' && headless?.spec.publishNotReadyAddresses === true &&
        matches(headless?.spec.selector, shard.labels),
        `StatefulSet serviceName ${sts.spec.serviceName}: expected a headless Service publishing ` +
        `not-ready shard pods`);
const shardArgs = shard.podSpec.containers[0].args;
const [registry] = resolve(flag(shardArgs, 'coordinator'), 'shard --coordinator');
f.check(registry?.spec.publishNotReadyAddresses === true &&
        matches(registry?.spec.selector, coordinator.labels),
        `shard --coordinator: ${registry?.metadata.name} must select the coordinator and publish ` +
        `it before it is ready (it becomes ready only once shards register)`);
const shardPort = shard.podSpec.containers[0].ports.find((p) => p.name === 'grpc').containerPort;
f.check(flag(shardArgs, 'listen') === `0.0.0.0:${shardPort}`, 'shard --listen: not its grpc port');
f.check(flag(shardArgs, 'advertise') ===
        `$(POD_NAME).${sts.spec.serviceName}.${namespace}.svc.${clusterDomain}:${shardPort}`,
        `shard --advertise=${flag(shardArgs, 'advertise')}: expected its stable DNS name`);
f.check(shard.podSpec.containers[0].env?.some((e) => e.name === 'POD_NAME' &&
                                               e.valueFrom?.fieldRef?.fieldPath === 'metadata.name'),
        'shard: POD_NAME must come from metadata.name');

// GPUs: one per shard pod exactly when enabled, K/V on it; never on the coordinator.
const gpu = values.shard.gpu;
const limits = shard.podSpec.containers[0].resources?.limits ?? {};
f.check(gpu.enabled ? +limits[gpu.resourceName] === 1 : !(gpu.resourceName in limits),
        `shard limits ${JSON.stringify(limits)}: ${gpu.resourceName} expected ${gpu.enabled ? 1 : 'absent'}`);
f.check(flag(shardArgs, 'device') === (gpu.enabled ? 'cuda:0' : 'cpu'),
        `shard --device=${flag(shardArgs, 'device')} with gpu.enabled=${gpu.enabled}`);
f.check(!JSON.stringify(coordinator.podSpec.containers[0].resources).includes(gpu.resourceName),
        'coordinator: asks for a GPU');

// The helm test: a hook, through the API Service (ready-gated), failing on any error.
const smokeArgs = smoke.podSpec.containers[0].args;
f.check(smoke.owner.metadata.annotations?.['helm.sh/hook'] === 'test', 'smoke pod: not a helm test');
f.check(smoke.podSpec.restartPolicy === 'Never', 'smoke pod: restarts');
f.check(binary(smoke.podSpec.containers[0]) === 'kvtier-load', 'smoke pod: not kvtier-load');
const [api] = resolve(flag(smokeArgs, 'coordinator'), 'smoke --coordinator');
f.check(api && !api.spec.publishNotReadyAddresses && matches(api.spec.selector, coordinator.labels),
        `smoke --coordinator: ${api?.metadata.name} must be the coordinator's ready-gated Service`);
f.check(smokeArgs.includes('--fail_on_errors') && flag(smokeArgs, 'verify') === '1',
        'smoke pod: must verify every output and fail on any error');

// Credentials, TLS and metrics flags as the values say.
const servers = [coordinator, shard].map((p) => p.podSpec.containers[0]);
for (const c of [...servers, smoke.podSpec.containers[0]]) {
  const server = c !== smoke.podSpec.containers[0];
  const has = (name) => c.args.some((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  const where = `container ${c.name}`;
  f.check(has('token_file') === values.auth.enabled, `${where}: --token_file vs auth.enabled`);
  f.check(has('credentials_file') === (server && values.auth.enabled),
          `${where}: --credentials_file vs auth.enabled`);
  const certs = values.tls.enabled && (server || values.tls.requireClientCert);
  f.check(has('tls_ca_file') === values.tls.enabled, `${where}: --tls_ca_file vs tls.enabled`);
  f.check(has('tls_cert_file') === certs && has('tls_key_file') === certs,
          `${where}: --tls_cert_file/--tls_key_file vs tls`);
  f.check(has('tls_require_client_cert') === (server && values.tls.enabled && values.tls.requireClientCert),
          `${where}: --tls_require_client_cert vs tls.requireClientCert`);
  if (server) {
    f.check(has('metrics_listen') === values.metrics.enabled &&
            (c.ports.some((p) => p.name === 'metrics' && p.containerPort === 9464) === values.metrics.enabled),
            `${where}: --metrics_listen and port 9464 vs metrics.enabled`);
  }
}
// A generated credentials file lists each token's SHA-256 with its roles.
const generated = secrets.find((s) => s.stringData?.credentials);
f.check(!!generated === (values.auth.enabled && !values.auth.existingSecret),
        'credentials Secret: generated exactly when auth is on without existingSecret');
if (generated) {
  const lines = generated.stringData.credentials.split('\n').filter((l) => l && !l.startsWith('#'));
  const roles = { coordinator: 'coordinator', shard: 'shard', frontend: 'frontend', admin: 'frontend,admin' };
  for (const [token, role] of Object.entries(roles)) {
    const hash = createHash('sha256').update(generated.stringData[`${token}.token`]).digest('hex');
    f.check(lines.some((l) => l.split(/\s+/)[0] === `sha256:${hash}` && l.split(/\s+/)[1] === role),
            `credentials: no line for ${token}.token with roles ${role}`);
  }
}

// Disruption budget and network policies over the right pods and ports.
const pdb = all.find((d) => d.kind === 'PodDisruptionBudget' && matches(d.spec.selector.matchLabels, shard.labels));
f.check(pdb?.spec.maxUnavailable === values.shard.pdb.maxUnavailable, 'no PDB over the shard pods');
const policies = all.filter((d) => d.kind === 'NetworkPolicy');
f.check(policies.length === (values.networkPolicy.enabled ? 2 : 0), `${policies.length} NetworkPolicies`);
for (const policy of policies) {
  const [pod, peer] = matches(policy.spec.podSelector.matchLabels, coordinator.labels)
    ? [coordinator, shard] : [shard, coordinator];
  const port = pod.podSpec.containers[0].ports.find((p) => p.name === 'grpc').containerPort;
  const rule = policy.spec.ingress.find((r) => r.ports.some((p) => p.port === port));
  const where = `NetworkPolicy ${policy.metadata.name}`;
  if (!f.check(rule, `${where}: no rule for the grpc port ${port}`)) continue;
  f.check(rule.from.some((from) => !from.namespaceSelector && matches(from.podSelector.matchLabels, peer.labels)),
          `${where}: the release's ${component(peer.labels)} pods cannot connect`);
  f.check(rule.from.some((from) => matches(from.podSelector.matchLabels, smoke.labels) &&
                                   Object.keys(from.podSelector.matchLabels).every((k) => k in values.networkPolicy.clientLabels)),
          `${where}: labelled clients cannot connect`);
  f.check(rule.from.every((from) => from.podSelector && Object.keys(from.podSelector.matchLabels ?? {}).length > 0),
          `${where}: a peer admits every pod`);
}

// The ServiceMonitor exactly where asked for and the API exists, over the metrics ports.
const monitor = all.find((d) => d.kind === 'ServiceMonitor');
const wantMonitor = values.metrics.enabled && values.metrics.serviceMonitor.enabled && monitoring;
if (f.check(!!monitor === wantMonitor, `ServiceMonitor: expected ${wantMonitor ? 'one' : 'none'}`) && monitor) {
  const scraped = services.filter((s) => matches(monitor.spec.selector.matchLabels, s.metadata.labels));
  f.check(scraped.length === 2 && scraped.every((s) => s.spec.ports.some((p) => p.name === 'metrics')),
          `ServiceMonitor selects ${scraped.map((s) => s.metadata.name)}: expected the coordinator's and the shards' metrics`);
}

f.exitIfAny('check_semantics');
console.log(`check_semantics: ${rendered}: ${pods.length} pod templates, ${services.length} Services, ` +
            `${shard.replicas} shards: all checks passed`);
