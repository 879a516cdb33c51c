// Boots a rendered kvtier chart without a cluster, as a kubelet would run it, on loopback: each
// pod's container (the coordinator, every shard replica, the helm test pod) runs with its
// rendered command, args and environment ($(VAR) expanded, fieldRef pod names), its Secret
// volumes written out, every port remapped to a free loopback one and every Service or pod DNS
// name in an arg replaced by the address of the pod behind it. Then: every probe of every server
// answers (its gRPC health name SERVING, over TLS when the tier has it; under TLS the probes
// are TCP connects, checked too), the helm test pod's load passes, and, with a shard killed,
// the same helm test fails.
//   KVTIER_CHART_TOOLS=DIR node boot_tier.mjs --manifests=RENDERED --namespace=NS --buf=BUF
//       --work=DIR (--bin=NAME=PATH... | --docker=TAG) [--secret=NAME=DIR...]
// --bin: the binary each image's entrypoint or a command names runs (local mode); --docker:
// each container runs as `docker run --network host` of its image at TAG instead; --secret:
// an existing Secret the manifests mount (its keys the files of DIR).
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { binary, kHealth, loadManifests, matches, podTemplates } from './manifests.mjs';

const options = { bin: {}, secret: {} };
for (const arg of process.argv.slice(2)) {
  const [, name, value] = /^--(\w+)=(.*)$/.exec(arg) ?? [];
  if (name === 'bin' || name === 'secret') {
    const [key, file] = value.split(/=(.*)/);
    options[name][key] = file;
  } else if (name) {
    options[name] = value;
  } else {
    throw new Error(`boot_tier: unexpected argument ${arg}`);
  }
}
for (const required of ['manifests', 'namespace', 'buf', 'work']) {
  if (!options[required]) throw new Error(`boot_tier: --${required} missing`);
}
if (!options.docker && Object.keys(options.bin).length === 0) {
  throw new Error('boot_tier: expected --bin=NAME=PATH... or --docker=TAG');
}
const docs = loadManifests(options.manifests).map(({ doc }) => doc);
const domain = 'svc.cluster.local';
const log = (message) => console.log(`boot_tier: ${message}`);
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

async function freePort() {
  const server = net.createServer();
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address();
  await new Promise((done) => server.close(done));
  return port;
}

// Pods: one per replica, named as Kubernetes names them (Deployment: a made-up suffix).
const pods = [];
for (const template of podTemplates(docs.map((doc) => ({ doc })))) {
  for (let i = 0; i < template.replicas; ++i) {
    const owner = template.owner;
    const name = owner.kind === 'Pod' ? owner.metadata.name
      : owner.kind === 'StatefulSet' ? `${owner.metadata.name}-${i}` : `${owner.metadata.name}-boot${i}`;
    const ports = {};
    for (const p of template.podSpec.containers.flatMap((c) => c.ports ?? [])) {
      ports[p.containerPort] = await freePort();
    }
    pods.push({ ...template, name, ports, headless: owner.spec?.serviceName });
  }
}
const servers = pods.filter((p) => p.owner.kind !== 'Pod');
const smoke = pods.find((p) => p.owner.metadata.annotations?.['helm.sh/hook'] === 'test');

// host:port as a container would dial it -> the loopback address of the pod behind it.
function remap(pod, host, port) {
  if (host === '0.0.0.0' || host === '127.0.0.1' || host === 'localhost') {
    return pod.ports[port] && `127.0.0.1:${pod.ports[port]}`;
  }
  for (const target of servers) {
    const fqdn = `${target.name}.${target.headless}.${options.namespace}.${domain}`;
    if (host === fqdn && target.ports[port]) return `127.0.0.1:${target.ports[port]}`;
  }
  for (const service of docs.filter((d) => d.kind === 'Service')) {
    const name = service.metadata.name;
    const names = [name, `${name}.${options.namespace}`, `${name}.${options.namespace}.svc`,
                   `${name}.${options.namespace}.${domain}`];
    const servicePort = service.spec.ports.find((p) => String(p.port) === port);
    if (!names.includes(host) || !servicePort) continue;
    const target = servers.find((p) => matches(service.spec.selector, p.labels));
    const declared = target?.podSpec.containers.flatMap((c) => c.ports ?? [])
      .find((p) => p.name === servicePort.targetPort || p.containerPort === servicePort.targetPort);
    if (declared) return `127.0.0.1:${target.ports[declared.containerPort]}`;
  }
  return undefined;
}

function secretFiles(name) {
  if (options.secret[name]) {
    return Object.fromEntries(readdirSync(options.secret[name])
      .map((key) => [key, readFileSync(path.join(options.secret[name], key))]));
  }
  const secret = docs.find((d) => d.kind === 'Secret' && d.metadata.name === name);
  if (!secret) throw new Error(`Secret ${name}: neither rendered nor given with --secret`);
  return {
    ...Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    ...Object.fromEntries(Object.entries(secret.stringData ?? {}).map(([k, v]) => [k, Buffer.from(v)])),
  };
}

// The volumes of a pod written out under the work dir: {name: {dir, emptyDir}}.
function writeVolumes(pod) {
  const volumes = {};
  for (const volume of pod.podSpec.volumes ?? []) {
    const dir = path.join(options.work, pod.name, volume.name);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    if (volume.secret) {
      const files = secretFiles(volume.secret.secretName);
      const items = volume.secret.items ?? Object.keys(files).map((key) => ({ key, path: key }));
      for (const item of items) {
        if (!(item.key in files)) throw new Error(`${pod.name}: Secret has no key ${item.key}`);
        writeFileSync(path.join(dir, item.path), files[item.key], { mode: 0o644 });
      }
    }
    volumes[volume.name] = { dir, emptyDir: !!volume.emptyDir };
  }
  return volumes;
}

// What a container is run with: its env ($(VAR) sources) and args, rewritten for loopback.
function containerRun(pod, container, volumes) {
  const env = {};
  for (const e of container.env ?? []) {
    const field = e.valueFrom?.fieldRef?.fieldPath;
    const key = e.valueFrom?.secretKeyRef;
    env[e.name] = field === 'metadata.name' ? pod.name
      : field === 'metadata.namespace' ? options.namespace
      : key ? secretFiles(key.name)[key.key].toString() : e.value ?? '';
  }
  const args = (container.args ?? []).map((arg) => {
    let value = arg.replace(/\$\((\w+)\)/g, (whole, name) => env[name] ?? whole);
    const address = /^(--\w+=)([\w.-]+):(\d+)$/.exec(value);
    if (address) {
      const local = remap(pod, address[2], address[3]);
      if (local) value = address[1] + local;
    }
    if (!options.docker) {
      for (const mount of container.volumeMounts ?? []) {
        value = value.replace(`=${mount.mountPath}/`, `=${volumes[mount.name].dir}/`);
      }
    }
    return value;
  });
  return { env, args };
}

const running = [];
function start(pod) {
  const container = pod.podSpec.containers[0];
  const volumes = writeVolumes(pod);
  const { env, args } = containerRun(pod, container, volumes);
  const logFile = path.join(options.work, `${pod.name}.log`);
  let command;
  let commandArgs;
  if (options.docker) {
    const user = pod.podSpec.securityContext;
    const docker = ['run', '--rm', '--name', `kvtier-boot-${process.pid}-${pod.name}`, '--network', 'host',
                    '--user', `${user.runAsUser}:${user.runAsGroup}`, '--cap-drop', 'ALL',
                    '--security-opt', 'no-new-privileges'];
    if (container.securityContext?.readOnlyRootFilesystem) docker.push('--read-only');
    for (const mount of container.volumeMounts ?? []) {
      const volume = volumes[mount.name];
      docker.push(...(volume.emptyDir ? ['--tmpfs', `${mount.mountPath}:uid=${user.runAsUser}`]
                                      : ['-v', `${volume.dir}:${mount.mountPath}:ro`]));
    }
    for (const [name, value] of Object.entries(env)) docker.push('-e', `${name}=${value}`);
    if (container.command) docker.push('--entrypoint', container.command[0]);
    const image = `${container.image.replace(/:[^:/]*$/, '')}:${options.docker}`;
    [command, commandArgs] = ['docker', [...docker, image, ...args]];
  } else {
    command = options.bin[binary(container)];
    if (!command) throw new Error(`${pod.name}: no --bin for ${binary(container)}`);
    commandArgs = args;
  }
  log(`${pod.name}: ${path.basename(command)} ${commandArgs.join(' ')}`);
  const out = openSync(logFile, 'a');
  const child = spawn(command, commandArgs, { env: { ...process.env, ...env }, stdio: ['ignore', out, out] });
  const run = { pod, child, logFile, volumes, args, exited: null,
                docker: options.docker && `kvtier-boot-${process.pid}-${pod.name}` };
  child.on('exit', (code, signal) => { run.exited = { code, signal }; });
  running.push(run);
  return run;
}

function stop(run, signal = 'SIGTERM') {
  if (run.docker) spawnSync('docker', ['kill', '--signal', signal, run.docker], { stdio: 'ignore' });
  if (!run.exited) run.child.kill(signal);
}

async function waitExit(run, ms) {
  for (let waited = 0; !run.exited && waited < ms; waited += 100) await sleep(100);
  return run.exited;
}

function fail(message) {
  console.error(`FAIL ${message}`);
  for (const run of running) {
    console.error(`--- ${run.pod.name} (${run.exited ? JSON.stringify(run.exited) : 'running'}), last lines:`);
    console.error(readFileSync(run.logFile, 'utf8').split('\n').slice(-15).join('\n'));
  }
  cleanUp();
  process.exit(1);
}

function cleanUp() {
  for (const run of running) stop(run, 'SIGKILL');
  if (options.docker) {
    for (const run of running) spawnSync('docker', ['rm', '-f', run.docker], { stdio: 'ignore' });
  }
}
process.on('SIGINT', () => { cleanUp(); process.exit(130); });
process.on('SIGTERM', () => { cleanUp(); process.exit(143); });

// The TLS files a server of the tier uses, for buf curl to call it as a client would.
function tlsOf(run) {
  const container = run.pod.podSpec.containers[0];
  const file = (name) => run.args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
  if (!file('tls_ca_file')) return null;
  const local = (p) => {
    if (!options.docker) return p;
    const mount = container.volumeMounts.find((m) => p.startsWith(`${m.mountPath}/`));
    return path.join(run.volumes[mount.name].dir, p.slice(mount.mountPath.length + 1));
  };
  return { ca: local(file('tls_ca_file')), cert: local(file('tls_cert_file')), key: local(file('tls_key_file')) };
}

function health(port, service, tls) {
  const flags = ['curl', '--protocol', 'grpc', '-d', JSON.stringify({ service })];
  let url = `http://127.0.0.1:${port}/grpc.health.v1.Health/Check`;
  if (tls) {
    flags.push('--cacert', tls.ca, '--cert', tls.cert, '--key', tls.key);
    url = url.replace('http:', 'https:');
  } else {
    flags.push('--http2-prior-knowledge');
  }
  const answer = spawnSync(options.buf, [...flags, url], { encoding: 'utf8', timeout: 10000 });
  return /"status":\s*"SERVING"/.test(answer.stdout) ? 'SERVING' : (answer.stdout + answer.stderr).trim();
}

function tcpConnects(port) {
  return new Promise((done) => {
    const socket = net.connect(port, '127.0.0.1', () => { socket.destroy(); done(true); });
    socket.on('error', () => done(false));
  });
}

// Waits until every probe of every server passes, as the kubelet would see it.
async function waitReady(runs, seconds) {
  const deadline = Date.now() + seconds * 1000;
  for (const run of runs) {
    const container = run.pod.podSpec.containers[0];
    const tls = tlsOf(run);
    for (const kind of ['livenessProbe', 'readinessProbe']) {
      const probe = container[kind];
      const port = probe.grpc?.port ?? probe.tcpSocket?.port;
      const local = run.pod.ports[port] ??
        run.pod.ports[container.ports.find((p) => p.name === port)?.containerPort];
      // Under TLS the probe is a TCP connect; the health name is then the contract's, over TLS.
      const service = probe.grpc?.service ??
        kHealth[binary(container)][kind === 'readinessProbe' ? 'ready' : 'always'][1];
      let last = 'not tried';
      for (;;) {
        if (run.exited) fail(`${run.pod.name} exited ${JSON.stringify(run.exited)}`);
        const connects = probe.grpc || (await tcpConnects(local));
        last = connects ? health(local, service, tls) : 'TCP connect refused';
        if (last === 'SERVING') break;
        if (Date.now() > deadline) fail(`${run.pod.name} ${kind} (${service}): ${last}`);
        await sleep(250);
      }
      log(`${run.pod.name} ${kind}: ${probe.grpc ? 'gRPC' : 'TCP, then gRPC over TLS'} ${service} SERVING`);
    }
  }
}

async function runSmoke(what) {
  const run = start(smoke);
  const exited = await waitExit(run, 180000);
  if (!exited) fail(`${what}: the helm test pod did not finish in 180 s`);
  const output = readFileSync(run.logFile, 'utf8');
  running.splice(running.indexOf(run), 1);
  return { exited, output };
}

const started = Date.now();
const tier = servers.map(start);
await waitReady(tier, 90);
log(`tier ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);

const good = await runSmoke('smoke load');
if (good.exited.code !== 0 || !/errors: none/.test(good.output)) {
  console.error(good.output);
  fail(`the helm test pod exited ${JSON.stringify(good.exited)} against a ready tier`);
}
log(`helm test pod passed: ${good.output.split('\n').find((l) => l.startsWith('sessions ')) ?? ''}`);

// Every server's metrics port, as Prometheus would scrape it: the coordinator counted the
// load's prompt tokens and every shard attended layers.
for (const run of tier) {
  const container = run.pod.podSpec.containers[0];
  const declared = (container.ports ?? []).find((p) => p.name === 'metrics');
  if (!declared) continue;
  const url = `http://127.0.0.1:${run.pod.ports[declared.containerPort]}/metrics`;
  const text = await (await fetch(url)).text();
  const family = run.pod.headless ? 'kvtier_shard_layers_total' : 'kvtier_prefix_lookup_tokens_total';
  const values = [...text.matchAll(new RegExp(`^${family}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))]
    .map((m) => Number(m[1]));
  const sum = values.reduce((a, b) => a + b, 0);
  if (!/^kvtier_build_info\{/m.test(text) || !(sum > 0)) {
    fail(`${run.pod.name} ${url}: expected kvtier_build_info and ${family} > 0, got ${sum}`);
  }
  log(`${run.pod.name} metrics: ${family} ${sum}`);
}

const lost = tier.find((run) => run.pod.headless);
stop(lost, 'SIGKILL');
await waitExit(lost, 10000);
const bad = await runSmoke('smoke load without a shard');
if (bad.exited.code === 0) {
  console.error(bad.output);
  fail(`the helm test pod passed with shard ${lost.pod.name} killed`);
}
log(`with ${lost.pod.name} killed the helm test pod fails (exit ${bad.exited.code}): ` +
    `${bad.output.split('\n').filter((l) => /kvtier-load: |errors:/.test(l)).pop() ?? ''}`);

for (const run of tier) stop(run);
for (const run of tier) {
  if (!(await waitExit(run, 15000))) fail(`${run.pod.name} did not stop on SIGTERM`);
}
cleanUp();
log(`passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
