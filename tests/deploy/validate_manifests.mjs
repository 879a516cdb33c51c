// Validates rendered chart manifests against the Kubernetes API types, two ways: the JSON
// schemas of kubernetes-models (types, required fields, formats; the Prometheus Operator's for
// ServiceMonitor), and a @kubernetes/client-node 1.x deserialize/serialize round trip, which
// drops every field the API type does not have, so any difference is an unknown field.
//   KVTIER_CHART_TOOLS=DIR node validate_manifests.mjs RENDERED.yaml...
import { isDeepStrictEqual } from 'node:util';
import { Failures, importTool, loadManifests } from './manifests.mjs';

const { ObjectSerializer } = await importTool('@kubernetes/client-node/dist/serializer.js');

function modelPath(apiVersion, kind) {
  if (apiVersion === 'monitoring.coreos.com/v1') {
    return `@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${kind}.js`;
  }
  return `kubernetes-models/${apiVersion}/${kind}.js`;
}

// client-node's type name: apps/v1 Deployment -> V1Deployment; none for custom resources.
function clientType(apiVersion, kind) {
  if (apiVersion.includes('.') && !apiVersion.endsWith('.k8s.io/v1')) return undefined;
  const version = apiVersion.split('/').pop();
  return version[0].toUpperCase() + version.slice(1) + kind;
}

// Where two plain objects differ, as paths ("spec.template.spec.containers.0.bogus").
function differences(a, b, at = '') {
  if (isDeepStrictEqual(a, b)) return [];
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return [at];
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].flatMap((key) => differences(a[key], b[key], at ? `${at}.${key}` : key));
}

const failures = new Failures();
let checked = 0;
for (const file of process.argv.slice(2)) {
  for (const { doc, source } of loadManifests(file)) {
    const what = `${file}: ${source}: ${doc.kind} ${doc.metadata?.name}`;
    let model;
    try {
      model = (await importTool(modelPath(doc.apiVersion, doc.kind)))[doc.kind];
    } catch {
      failures.check(false, `${what}: no API type ${doc.apiVersion} ${doc.kind}`);
      continue;
    }
    try {
      new model(doc).validate();
    } catch (error) {
      failures.check(false, `${what}: kubernetes-models: ${error.message}`);
    }
    const type = clientType(doc.apiVersion, doc.kind);
    if (type) {
      // Through JSON: the values as the API server reads them; a copy for each side, as
      // deserialize may rename fields of its input in place.
      const plain = JSON.parse(JSON.stringify(doc));
      const typed = ObjectSerializer.deserialize(JSON.parse(JSON.stringify(doc)), type);
      const back = JSON.parse(JSON.stringify(ObjectSerializer.serialize(typed, type)));
      for (const field of differences(plain, back)) {
        failures.check(false, `${what}: ${field}: not a field of ${type} (client-node round trip)`);
      }
    }
    ++checked;
  }
}
failures.exitIfAny('validate_manifests');
console.log(`validate_manifests: ${checked} documents valid`);
