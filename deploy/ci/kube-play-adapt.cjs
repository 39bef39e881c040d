// Adapts the chart's rendered manifests for `podman kube play` (podman 4.3),
// changing only what podman cannot run as Kubernetes would, and says what it
// changed. Used by check-image.sh; deploy/README.md "CI checks" lists the
// differences.
//
//   * Secret volumes become hostPath volumes. podman 4.3 looks a Secret
//     volume up among podman's own secrets (it fails unless `optional: true`)
//     and, when found, mounts the data still base64-encoded. So each Secret
//     volume is laid out here as the kubelet would: one file per projected
//     item (key -> path) from SECRETS_DIR/<secretName>/<key>, with the
//     volume's mode (item mode, else defaultMode), owned by root and the pod's
//     fsGroup (podman ignores fsGroup, the kubelet would apply it). A missing
//     key fails, as it keeps a real pod from starting.
//   * Extra ConfigMaps the values reference but the chart does not render
//     (e.g. a tenant's upstreamCa) are added from CONFIGMAPS_DIR/<name>/<key>,
//     as `kubectl create configmap --from-file` would make them.
//   * replicas becomes 1. podman starts every replica on this one host; the
//     chart's spread constraint (one pod per node, DoNotSchedule), which
//     podman ignores, would keep a second replica Pending on one node.
//   * The containers' `ports` lists go. podman 4.3 publishes each
//     containerPort on the host at the same number (Kubernetes publishes
//     none without hostPort), so a second pod, or anything on the host using
//     8443, would collide. The broker still listens on them in the pod's own
//     network namespace; the script connects to the pod's address.
// Everything else — the ConfigMap the chart renders, the securityContexts,
// ports, args, mounts and the probes — is passed through unchanged. podman
// ignores gRPC probes, so the plan written to stdout lists them (port and
// service of each) for the script to run itself.
//
// Usage: NODE_PATH=<node_modules> node kube-play-adapt.cjs RENDERED SECRETS_DIR CONFIGMAPS_DIR OUT_DIR
// Writes OUT_DIR/kube.yaml (ConfigMaps, then the Deployment) and the
// volumes' files under OUT_DIR/volumes/; prints the plan (JSON) on stdout.
'use strict';
const fs = require('fs');
const path = require('path');
const YAML = require('yaml');

const [renderedFile, secretsDir, configMapsDir, outDir] = process.argv.slice(2);
if (!outDir) {
  console.error('usage: kube-play-adapt.cjs RENDERED SECRETS_DIR CONFIGMAPS_DIR OUT_DIR');
  process.exit(2);
}
const die = (msg) => {
  console.error(`kube-play-adapt: ${msg}`);
  process.exit(1);
};

// YAML 1.1, as Kubernetes reads manifests (so `defaultMode: 0440` is octal).
const docs = YAML.parseAllDocuments(fs.readFileSync(renderedFile, 'utf8'), { version: '1.1' })
  .map((d) => d.toJS())
  .filter(Boolean);
const deployments = docs.filter((d) => d.kind === 'Deployment');
if (deployments.length !== 1) die(`expected one Deployment, found ${deployments.length}`);
const deployment = deployments[0];
const pod = deployment.spec.template.spec;
const fsGroup = pod.securityContext?.fsGroup ?? 0;
const adapted = [];

// What the script checks by hand (the probes podman ignores, the ports), from
// the manifest as rendered, before any adaptation.
const probeOf = (p) => p && (p.grpc ? { grpc: { port: p.grpc.port, service: p.grpc.service ?? '' } } : p);
const plan = {
  name: deployment.metadata.name,
  replicas: deployment.spec.replicas,
  terminationGracePeriodSeconds: pod.terminationGracePeriodSeconds,
  podSecurityContext: pod.securityContext,
  containers: pod.containers.map((c) => ({
    name: c.name,
    image: c.image,
    ports: Object.fromEntries((c.ports ?? []).map((p) => [p.name, p.containerPort])),
    probes: {
      startup: probeOf(c.startupProbe),
      liveness: probeOf(c.livenessProbe),
      readiness: probeOf(c.readinessProbe),
    },
    preStop: c.lifecycle?.preStop,
    securityContext: c.securityContext,
  })),
  adapted,
};

if (deployment.spec.replicas !== 1) {
  adapted.push(`replicas ${deployment.spec.replicas} -> 1 (one host)`);
  deployment.spec.replicas = 1;
}
for (const c of pod.containers) {
  if (!c.ports) continue;
  adapted.push(`container ${c.name}: ports ${c.ports.map((p) => `${p.name}/${p.containerPort}`).join(', ')} ` +
    'not declared (podman would publish them on the host)');
  delete c.ports;
}

// Secret volumes -> hostPath directories laid out like the kubelet's.
for (const volume of pod.volumes ?? []) {
  if (!volume.secret) continue;
  const { secretName, items, defaultMode = 0o644 } = volume.secret;
  const source = path.join(secretsDir, secretName);
  if (!fs.existsSync(source)) die(`volume ${volume.name}: no Secret ${secretName} in ${secretsDir}`);
  const projected = items ?? fs.readdirSync(source).map((key) => ({ key, path: key }));
  const dir = path.resolve(outDir, 'volumes', volume.name);
  fs.mkdirSync(dir, { recursive: true });
  for (const item of projected) {
    const from = path.join(source, item.key);
    if (!fs.existsSync(from)) die(`volume ${volume.name}: Secret ${secretName} has no key ${item.key}`);
    const to = path.join(dir, item.path);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.copyFileSync(from, to);
    fs.chownSync(to, 0, fsGroup);
    fs.chmodSync(to, item.mode ?? defaultMode);
  }
  delete volume.secret;
  volume.hostPath = { path: dir, type: 'Directory' };
  adapted.push(`volume ${volume.name}: Secret ${secretName} (${projected.map((i) => i.key).join(', ')}, ` +
    `mode ${(defaultMode).toString(8)}, group ${fsGroup}) -> hostPath`);
}

// ConfigMaps the pod mounts but the chart does not render.
const configMaps = docs.filter((d) => d.kind === 'ConfigMap');
const rendered = new Set(configMaps.map((c) => c.metadata.name));
for (const volume of pod.volumes ?? []) {
  const name = volume.configMap?.name;
  if (!name || rendered.has(name)) continue;
  const source = path.join(configMapsDir, name);
  if (!fs.existsSync(source)) die(`volume ${volume.name}: no ConfigMap ${name} rendered or in ${configMapsDir}`);
  const data = Object.fromEntries(fs.readdirSync(source).map((key) =>
    [key, fs.readFileSync(path.join(source, key), 'utf8')]));
  configMaps.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data });
  rendered.add(name);
  adapted.push(`volume ${volume.name}: ConfigMap ${name} added from ${source}`);
}

fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, 'kube.yaml'),
  [...configMaps, deployment].map((d) => YAML.stringify(d)).join('---\n'));

process.stdout.write(JSON.stringify(plan, null, 2) + '\n');
