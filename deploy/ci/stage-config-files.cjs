// Prepares a rendered broker.json for `treezor-token-broker --check-config`
// outside a cluster. The config names files that, in a pod, are mounted from
// Secrets (validate-manifests.cjs checks that mapping). Here each such file is
// created under ROOT, at ROOT + its path in the pod, from real development
// certificates (scripts/dev-certs.sh) or placeholder secret text, and the
// paths in the copy written to OUT get the ROOT prefix. Nothing else changes,
// so the broker validates the chart's config as rendered.
//
// A *File field this script does not know fails the run: a new kind of file
// in the config needs a deliberate decision here.
//
// Usage: node stage-config-files.cjs CONFIG CERT_DIR ROOT OUT
'use strict';
const fs = require('fs');
const path = require('path');

const [configFile, certDir, root, out] = process.argv.slice(2);
if (!out) {
  console.error('usage: stage-config-files.cjs CONFIG CERT_DIR ROOT OUT');
  process.exit(2);
}

// Field path (indices as []) -> development certificate file, or text.
const kSources = {
  'serverTls.certFile': { cert: 'broker.crt' },
  'serverTls.keyFile': { cert: 'broker.key' },
  'serverTls.clientCaFile': { cert: 'internal-ca.crt' },
  'tenants[].clientSecretFile': { text: 'placeholder-client-secret\n' },
  'tenants[].usernameFile': { text: 'placeholder-user\n' },
  'tenants[].passwordFile': { text: 'placeholder-password\n' },
  'tenants[].upstreamTls.certFile': { cert: 'broker-to-treezor.crt' },
  'tenants[].upstreamTls.keyFile': { cert: 'broker-to-treezor.key' },
  'tenants[].upstreamTls.caFile': { cert: 'treezor-ca.crt' },
};

const config = JSON.parse(fs.readFileSync(configFile, 'utf8'));
let unknown = 0;
(function walk(node, at) {
  if (Array.isArray(node)) {
    node.forEach((x) => walk(x, `${at}[]`));
    return;
  }
  if (!node || typeof node !== 'object') return;
  for (const [k, v] of Object.entries(node)) {
    const here = at ? `${at}.${k}` : k;
    if (!/File$/.test(k) || typeof v !== 'string') {
      walk(v, here);
      continue;
    }
    const source = kSources[here];
    if (!source) {
      console.error(`stage-config-files: no placeholder known for ${here} (${v}); add one`);
      unknown++;
      continue;
    }
    if (!path.isAbsolute(v)) {
      console.error(`stage-config-files: ${here} is not an absolute path: ${v}`);
      unknown++;
      continue;
    }
    const staged = path.join(root, v);
    fs.mkdirSync(path.dirname(staged), { recursive: true });
    if (source.cert) fs.copyFileSync(path.join(certDir, source.cert), staged);
    else fs.writeFileSync(staged, source.text, { mode: 0o600 });
    node[k] = staged;
  }
})(config, '');
fs.writeFileSync(out, JSON.stringify(config, null, 2));
process.exit(unknown ? 1 : 0);
