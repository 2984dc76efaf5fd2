// A stand-in for `pipework daemon` that speaks its CNI contract
// (POST /v1/cni {env, stdin} -> {exitCode, stdout, stderr}) and misbehaves on
// demand, for test/e2e/cni-shim.test.ts: what the shim does with answers the
// real daemon never gives. Usage: node contract-daemon.js SOCKET MODE
//   echo     stdout is the request body as received (JSON), exit code 0
//   hang     reads the request, never answers
//   status   answers HTTP 503 with a text body
//   garbage  answers 200 with a body that is not the contract's JSON
//   chunked  answers {exitCode 3, stdout, stderr} with chunked encoding
//   close    closes the connection as soon as the request has arrived
// Prints "listening" on stdout once it accepts connections.
'use strict';
const http = require('node:http');
const [socket, mode] = process.argv.slice(2);

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    switch (mode) {
      case 'echo':
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify({ exitCode: 0, stdout: JSON.stringify({ method: req.method, url: req.url, type: req.headers['content-type'], body: JSON.parse(body) }), stderr: '' }));
        break;
      case 'hang':
        break;
      case 'status':
        res.statusCode = 503;
        res.end('the daemon cannot take calls now');
        break;
      case 'garbage':
        res.end('{"exitCode": "zero"');
        break;
      case 'chunked':
        res.setHeader('Content-Type', 'application/json');
        res.write('{"exitCode":3,"stdout":"out \\u00e9\\ud83d\\ude00\\n",');
        setTimeout(() => res.end('"stderr":"err\\n","extra":[1,{"a":null}]}'), 20);
        break;
      case 'close':
        req.socket.destroy();
        break;
      default:
        throw new Error(`unknown mode ${mode}`);
    }
  });
});
server.listen(socket, () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
