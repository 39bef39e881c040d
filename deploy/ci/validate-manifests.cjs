// Validates one `helm template` rendering of the chart, offline:
//   1. every document against the Kubernetes schemas of kubernetes-models
//      (CRDs, which have no schema there, are skipped by name, out loud);
//   2. the hardening the chart promises (securityContext, probes, spread,
//      rollout, no service-account token, ...), since kubernetes-models does
//      not flag misspelt fields and a misspelt securityContext field would
//      silently weaken the pod;
//   3. the wiring: every file the broker's config names lies under a
//      read-only, whole (no subPath) volume mount that projects that key, and
//      checksum/config is the hash of the ConfigMap's config.
// Writes the ConfigMap's broker.json to CONFIG_OUT for --check-config.
//
// Usage: NODE_PATH=<node_modules> node validate-manifests.cjs MANIFESTS CONFIG_OUT
// Exit status 1 when anything fails; every finding is printed.
'use strict';
const fs = require('fs');
const crypto = require('crypto');
const path = require('path');
const YAML = require('yaml');

const [manifestsFile, configOut] = process.argv.slice(2);
if (!manifestsFile || !configOut) {
  console.error('usage: validate-manifests.cjs MANIFESTS CONFIG_OUT');
  process.exit(2);
}

// Custom resources: no schema offline. Skipped by name, never by accident.
const kCrds = new Set(['cert-manager.io/v1/Certificate', 'monitoring.coreos.com/v1/ServiceMonitor']);

let failures = 0;
const ok = (msg) => console.log(`    ok    ${msg}`);
const bad = (msg) => { failures++; console.log(`    FAIL  ${msg}`); };
const expect = (cond, msg) => (cond ? ok(msg) : bad(msg));

// YAML 1.1, as Kubernetes reads manifests (so `defaultMode: 0440` is octal).
const docs = YAML.parseAllDocuments(fs.readFileSync(manifestsFile, 'utf8'), { version: '1.1' })
  .map((d) => {
    if (d.errors.length) bad(`YAML: ${d.errors.map((e) => e.message).join('; ')}`);
    return d.toJS();
  })
  .filter((d) => d != null);

const byKind = {};
for (const doc of docs) {
  const id = `${doc.kind} ${doc.metadata && doc.metadata.name} (${doc.apiVersion})`;
  (byKind[doc.kind] = byKind[doc.kind] || []).push(doc);
  const typeKey = `${doc.apiVersion}/${doc.kind}`;
  if (kCrds.has(typeKey)) {
    console.log(`    skip  ${id}: custom resource, no schema offline (checked below by hand)`);
    continue;
  }
  let Model;
  try {
    Model = require(`kubernetes-models/${doc.apiVersion}/${doc.kind}`)[doc.kind];
  } catch (e) {
    bad(`${id}: no kubernetes-models schema for ${typeKey} (add it to the CRD list only if it is a CRD)`);
    continue;
  }
  try {
    new Model(doc).validate();
    ok(`${id}: valid against the Kubernetes schema`);
  } catch (e) {
    bad(`${id}: ${e.message}`);
  }
}

const one = (kind, pred = () => true) => (byKind[kind] || []).filter(pred);
const deployments = one('Deployment');
const configMaps = one('ConfigMap', (c) => c.data && c.data['broker.json']);
if (deployments.length !== 1 || configMaps.length !== 1) {
  bad(`expected one Deployment and one ConfigMap with broker.json, got ${deployments.length} and ${configMaps.length}`);
  process.exit(1);
}
const deploy = deployments[0];
const podSpec = deploy.spec.template.spec;
const brokerJson = configMaps[0].data['broker.json'];
let config;
try {
  config = JSON.parse(brokerJson);
  ok('ConfigMap broker.json is JSON');
} catch (e) {
  bad(`ConfigMap broker.json is not JSON: ${e.message}`);
  process.exit(1);
}
fs.writeFileSync(configOut, brokerJson);

// --- hardening -------------------------------------------------------------
function checkPod(what, spec) {
  const psc = spec.securityContext || {};
  expect(spec.automountServiceAccountToken === false, `${what}: automountServiceAccountToken false`);
  expect(psc.runAsNonRoot === true, `${what}: pod runAsNonRoot`);
  expect(psc.seccompProfile && psc.seccompProfile.type === 'RuntimeDefault', `${what}: pod seccomp RuntimeDefault`);
  expect(!spec.hostNetwork && !spec.hostPID && !spec.hostIPC, `${what}: no host namespaces`);
  for (const c of spec.containers) {
    const sc = c.securityContext || {};
    const drop = (sc.capabilities && sc.capabilities.drop) || [];
    expect(sc.runAsNonRoot === true, `${what}/${c.name}: runAsNonRoot`);
    expect(sc.readOnlyRootFilesystem === true, `${what}/${c.name}: readOnlyRootFilesystem`);
    expect(sc.allowPrivilegeEscalation === false, `${what}/${c.name}: allowPrivilegeEscalation false`);
    expect(sc.privileged !== true, `${what}/${c.name}: not privileged`);
    expect(drop.includes('ALL') && !(sc.capabilities.add || []).length, `${what}/${c.name}: capabilities drop ALL, add none`);
    expect(sc.seccompProfile && sc.seccompProfile.type === 'RuntimeDefault', `${what}/${c.name}: seccomp RuntimeDefault`);
    const r = c.resources || {};
    expect(r.requests && r.limits && r.limits.memory, `${what}/${c.name}: resource requests and limits`);
  }
}

checkPod('Deployment', podSpec);
expect(deploy.spec.replicas >= 2, `Deployment: ${deploy.spec.replicas} replicas (>= 2)`);
const ru = (deploy.spec.strategy || {}).rollingUpdate || {};
expect(deploy.spec.strategy.type === 'RollingUpdate' && ru.maxUnavailable === 0, 'Deployment: RollingUpdate with maxUnavailable 0');
const tsc = podSpec.topologySpreadConstraints || [];
expect(tsc.some((t) => t.topologyKey === 'kubernetes.io/hostname' && t.labelSelector), 'Deployment: spread across nodes (kubernetes.io/hostname)');

const broker = podSpec.containers.find((c) => c.name === 'broker');
const portOf = (name) => ((broker.ports || []).find((p) => p.name === name) || {}).containerPort;
const healthPort = portOf('health');
expect(config.healthListenAddress && config.healthListenAddress.endsWith(`:${healthPort}`), `health port ${healthPort} is the config's healthListenAddress`);
expect(config.listenAddress && config.listenAddress.endsWith(`:${portOf('grpc')}`), `grpc port ${portOf('grpc')} is the config's listenAddress`);
for (const p of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
  const probe = broker[p];
  expect(probe && probe.grpc && probe.grpc.port === healthPort, `broker ${p}: native gRPC probe on the health port`);
}
const seconds = (d) => (d ? parseFloat(d) : 10);
const preStop = (((broker.lifecycle || {}).preStop || {}).exec || {}).command;
const preStopSeconds = preStop ? parseFloat(preStop[preStop.length - 1]) : 0;
expect(podSpec.terminationGracePeriodSeconds > preStopSeconds + seconds(config.shutdownGracePeriod),
  `terminationGracePeriodSeconds ${podSpec.terminationGracePeriodSeconds} > preStop ${preStopSeconds}s + shutdownGracePeriod ${seconds(config.shutdownGracePeriod)}s`);
const checksum = crypto.createHash('sha256').update(brokerJson.replace(/\n$/, '')).digest('hex');
expect(deploy.spec.template.metadata.annotations['checksum/config'] === checksum, 'checksum/config is the sha256 of the ConfigMap\'s broker.json');

for (const sa of one('ServiceAccount')) {
  expect(sa.automountServiceAccountToken === false, `ServiceAccount ${sa.metadata.name}: automountServiceAccountToken false`);
}
const services = one('Service');
const grpcPort = services.length === 1 && services[0].spec.ports.find((p) => p.name === 'grpc');
expect(grpcPort && grpcPort.appProtocol, `Service: gRPC port with appProtocol (${grpcPort && grpcPort.appProtocol})`);
expect(one('PodDisruptionBudget').length === 1, 'PodDisruptionBudget present');
for (const np of one('NetworkPolicy')) {
  const types = np.spec.policyTypes || [];
  expect(types.includes('Ingress') && types.includes('Egress'), `NetworkPolicy ${np.metadata.name}: restricts ingress and egress`);
}

const selector = deploy.spec.selector.matchLabels;
const selects = (labels) => Object.entries(selector).every(([k, v]) => (labels || {})[k] === v);
const tests = one('Pod', (p) => (p.metadata.annotations || {})['helm.sh/hook'] === 'test');
expect(tests.length >= 1, '`helm test` pod present');
for (const t of tests) {
  checkPod(`test Pod ${t.metadata.name}`, t.spec);
  expect(!selects(t.metadata.labels), `test Pod ${t.metadata.name}: not selected by the broker's Service/PDB`);
}

// --- wiring: config paths <-> mounts --------------------------------------
const mounts = broker.volumeMounts || [];
const volumes = Object.fromEntries((podSpec.volumes || []).map((v) => [v.name, v]));
for (const m of mounts) {
  expect(m.readOnly === true && !m.subPath && !m.subPathExpr, `mount ${m.mountPath}: read-only, whole volume (no subPath)`);
  const v = volumes[m.name] || {};
  if (v.secret) expect(v.secret.defaultMode === 0o440, `volume ${m.name}: Secret files mode 0440 (got 0${(v.secret.defaultMode || 0).toString(8)})`);
}
const filePaths = [];
(function walk(node, at) {
  if (Array.isArray(node)) node.forEach((x, i) => walk(x, `${at}[${i}]`));
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      const here = at ? `${at}.${k}` : k;
      if (/File$/.test(k) && typeof v === 'string') filePaths.push([here, v]);
      else walk(v, here);
    }
  }
})(config, '');
for (const [field, file] of filePaths) {
  const m = mounts.find((x) => file.startsWith(`${x.mountPath}/`));
  if (!m) { bad(`${field} = ${file}: no volume mount covers it`); continue; }
  const rel = file.slice(m.mountPath.length + 1);
  const v = volumes[m.name] || {};
  const source = v.secret || v.configMap;
  const items = (source && source.items) || [];
  const item = items.find((i) => i.path === rel);
  expect(source && item, `${field} = ${file}: projected from ${v.secret ? 'Secret ' + v.secret.secretName : 'ConfigMap ' + (v.configMap || {}).name} key ${item ? item.key : '?'}`);
}
const configMount = mounts.find((m) => broker.args.includes(`${m.mountPath}/broker.json`));
expect(configMount && volumes[configMount.name].configMap.name === configMaps[0].metadata.name, 'the broker reads the rendered ConfigMap (--config)');

// --- custom resources, by hand ---------------------------------------------
for (const cert of one('Certificate')) {
  const tlsVolume = volumes['server-tls'];
  expect(tlsVolume && tlsVolume.secret.secretName === cert.spec.secretName, `Certificate ${cert.metadata.name}: writes the Secret the broker mounts (${cert.spec.secretName})`);
  expect(cert.spec.issuerRef && cert.spec.issuerRef.name, `Certificate ${cert.metadata.name}: has an issuerRef`);
  const svc = services[0];
  const fqdn = `${svc.metadata.name}.${svc.metadata.namespace}.svc`;
  expect((cert.spec.dnsNames || []).includes(fqdn), `Certificate ${cert.metadata.name}: names the Service (${fqdn})`);
  expect(cert.spec.privateKey && cert.spec.privateKey.rotationPolicy === 'Always', `Certificate ${cert.metadata.name}: new key at each renewal`);
}
for (const sm of one('ServiceMonitor')) {
  const svc = services[0];
  const names = svc.spec.ports.map((p) => p.name);
  for (const ep of sm.spec.endpoints) expect(names.includes(ep.port), `ServiceMonitor ${sm.metadata.name}: port ${ep.port} exists on the Service`);
  const sel = sm.spec.selector.matchLabels;
  expect(Object.entries(sel).every(([k, v]) => svc.metadata.labels[k] === v), `ServiceMonitor ${sm.metadata.name}: selects the Service`);
}

console.log(`    ${path.basename(manifestsFile)}: ${docs.length} documents, ${failures} failure(s)`);
process.exit(failures ? 1 : 0);
