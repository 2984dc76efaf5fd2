#!/bin/sh
':' //; unset NODE_EXTRA_CA_CERTS; [ "$1" != daemon ] || exec node --max-semi-space-size=1 "$0" "$@"; exec node "$0" "$@"
// `pipework`. Run as a program, the two lines above are for /bin/sh: they
// drop NODE_EXTRA_CA_CERTS (Node reads that whole CA bundle at start-up,
// ~40 ms here, and the CLI needs no TLS) and start Node on this same file,
// with no other program started to find it ($0 is the path it was run by;
// Node follows links). To Node, line 2 is a string and a comment.
// `pipework daemon` gets a 1 MiB young generation: its live heap is about
// 5 MB, and with V8's default (16 MiB semi-spaces, grown and shrunk as it
// likes) its RSS wandered between 60 and 100 MB over 10,000 CNI ADD/DEL
// pairs; with 1 MiB it stays near 58 MB (bench/daemon-soak.js).
'use strict';
require('../dist/main.js')
  .main(process.argv.slice(2))
  .then((code) => { process.exitCode = code; });
