// Shared by the chart's node checks: loading the packages install_chart_tools.sh put in the
// tools dir (KVTIER_CHART_TOOLS), reading rendered manifests (multi-document YAML), the health
// service names of each server, and the label matching Kubernetes does.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const tools = process.env.KVTIER_CHART_TOOLS;
if (!tools) throw new Error('KVTIER_CHART_TOOLS: expected the dir install_chart_tools.sh filled');

// A module of the tools dir by its path under node_modules (their exports are import-only, and
// node resolves no bare name outside its own tree).
export function importTool(modulePath) {
  return import(pathToFileURL(path.join(tools, 'node_modules', modulePath)).href);
}

// js-yaml, not client-node's loadAllYaml, which returns typed objects (unknown fields dropped).
const { loadAll } = await importTool('js-yaml/dist/js-yaml.mjs');

// The documents of a rendered chart, each with where it came from (helm's "# Source:" line).
export function loadManifests(file) {
  const docs = [];
  for (const text of readFileSync(file, 'utf8').split(/^---$/m)) {
    const source = /^# Source: (.*)$/m.exec(text)?.[1] ?? file;
    for (const doc of loadAll(text)) {
      if (doc) docs.push({ doc, source });
    }
  }
  return docs;
}

// Health service names each server registers (proto/wire/serving_health.h): those that turn
// SERVING only once ready, and those SERVING from the start.
export const kHealth = {
  'kvtier-coordinator': { ready: ['', 'kvtier.v1.SessionService'],
                          always: ['kvtier.v1.AdminService', 'kvtier.v1.ShardRegistryService'] },
  'kvtier-shard': { ready: ['', 'kvtier.v1.AttentionService'],
                    always: ['kvtier.v1.ShardControlService', 'kvtier.v1.BlockTransferService'] },
};

// Whether `labels` satisfy a matchLabels map (a Service's selector is one too).
export function matches(matchLabels, labels) {
  return Object.entries(matchLabels ?? {}).every(([key, value]) => labels?.[key] === value);
}

// The pods a workload or helm test makes: {owner, podSpec, labels, replicas}.
export function podTemplates(docs) {
  const pods = [];
  for (const { doc } of docs) {
    if (doc.kind === 'Deployment' || doc.kind === 'StatefulSet') {
      pods.push({ owner: doc, podSpec: doc.spec.template.spec,
                  labels: doc.spec.template.metadata?.labels ?? {}, replicas: doc.spec.replicas ?? 1 });
    } else if (doc.kind === 'Pod') {
      pods.push({ owner: doc, podSpec: doc.spec, labels: doc.metadata.labels ?? {}, replicas: 1 });
    }
  }
  return pods;
}

// The binary a container runs: its command, or its image's entrypoint, named as the image is
// (kvtier-coordinator:TAG runs kvtier-coordinator).
export function binary(container) {
  return container.command?.[0] ?? container.image.split('/').pop().split(':')[0];
}

// The value of --name=VALUE among a container's args (undefined if absent).
export function flag(args, name) {
  const prefix = `--${name}=`;
  return (args ?? []).find((arg) => arg.startsWith(prefix))?.slice(prefix.length);
}

// A check that failed: collected, so that one run reports every failure.
export class Failures {
  constructor() { this.list = []; }
  check(ok, message) { if (!ok) this.list.push(message); return ok; }
  exitIfAny(what) {
    for (const message of this.list) console.error(`FAIL ${message}`);
    if (this.list.length > 0) {
      console.error(`${what}: ${this.list.length} failure(s)`);
      process.exit(1);
    }
  }
}
