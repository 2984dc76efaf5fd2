#!/bin/sh
':' //; unset NODE_EXTRA_CA_CERTS; exec node "$0" "$@"
// `pipework`. Run as a program, the two lines above are for /bin/sh: they
// drop NODE_EXTRA_CA_CERTS (Node reads that whole CA bundle at start-up,
// ~40 ms here, and the CLI needs no TLS) and start Node on this same file,
// with no other program started to find it ($0 is the path it was run by;
// Node follows links). To Node, line 2 is a string and a comment.
'use strict';
require('../dist/main.js')
  .main(process.argv.slice(2))
  .then((code) => { process.exitCode = code; });
