#!/usr/bin/env node
// The Docker network plugin, driven as Docker drives it. `pipework
// docker-plugin` serves libnetwork's remote driver protocol (JSON over HTTP
// on a unix socket); with Docker you would run
//   pipework docker-plugin &              (socket /run/docker/plugins/pipework.sock)
//   docker network create -d pipework -o parent=br-docker --subnet 10.62.0.0/24 --gateway 10.62.0.1 pwnet
//   docker run --net pwnet --ip 10.62.0.2 ...
// Here, without Docker, this program sends the calls Docker would send for
// that network and one container, and prints the replies. It makes a bridge:
// run it in throwaway namespaces,
//   node scripts/in-netns.js node examples/docker-plugin.js
'use strict';
const { spawn } = require('node:child_process');
const { mkdtempSync, rmSync } = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const pkgDir = path.dirname(require.resolve('pipework/package.json'));
const pipework = path.join(pkgDir, require('pipework/package.json').bin.pipework);
const dir = mkdtempSync(path.join(os.tmpdir(), 'pipework-docker-example-'));
const socketPath = path.join(dir, 'pipework.sock');

/** One plugin call, as Docker makes it: POST /Method with a JSON body. */
function post(method, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: `/${method}`, method: 'POST', headers: { 'Content-Type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d) => { text += d; }).on('end', () => {
        const reply = JSON.parse(text);
        if (res.statusCode !== 200) reject(new Error(`${method}: ${reply.Err}`));
        else resolve(reply);
      });
    });
    req.on('error', reject);
    req.end(JSON.stringify(body ?? {}));
  });
}

async function main() {
  const plugin = spawn(pipework, ['docker-plugin', '--socket', socketPath, '--state', path.join(dir, 'state.json'), '--quiet'], { stdio: 'inherit' });
  try {
    // Docker looks for the socket, then activates the plugin.
    for (let i = 0; ; i++) {
      try {
        console.log('Plugin.Activate ->', JSON.stringify(await post('Plugin.Activate')));
        break;
      } catch (e) {
        if (i === 100 || plugin.exitCode !== null) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const network = { NetworkID: 'example-net', IPv4Data: [{ Pool: '10.62.0.0/24', Gateway: '10.62.0.1/24' }], Options: { 'com.docker.network.generic': { parent: 'br-docker' } } };
    const endpoint = { NetworkID: 'example-net', EndpointID: 'example-endpoint', Interface: { Address: '10.62.0.2/24' } };
    const calls = [
      ['NetworkDriver.GetCapabilities', {}],
      ['NetworkDriver.CreateNetwork', network],
      ['NetworkDriver.CreateEndpoint', endpoint],
      // Docker then moves the link named by SrcName into the container, renamed eth0.
      ['NetworkDriver.Join', { NetworkID: 'example-net', EndpointID: 'example-endpoint', SandboxKey: '/var/run/docker/netns/example' }],
      ['NetworkDriver.Leave', { NetworkID: 'example-net', EndpointID: 'example-endpoint' }],
      ['NetworkDriver.DeleteEndpoint', { NetworkID: 'example-net', EndpointID: 'example-endpoint' }],
      ['NetworkDriver.DeleteNetwork', { NetworkID: 'example-net' }],
    ];
    for (const [method, body] of calls) console.log(`${method} -> ${JSON.stringify(await post(method, body))}`);
  } finally {
    plugin.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
