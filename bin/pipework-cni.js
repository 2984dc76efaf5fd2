#!/bin/sh
':' //; unset NODE_EXTRA_CA_CERTS; exec node "$0" "$@"
// The two lines above are for /bin/sh, which a CNI runtime runs this file
// with: they drop NODE_EXTRA_CA_CERTS (Node reads that whole CA bundle at
// start-up, ~40 ms here, and this plugin needs no TLS) and start Node on this
// same file. To Node, line 2 is a string and a comment.
//
// pipework-cni: a CNI plugin (spec 1.0.0 and 1.1.0). Install it under the
// name its network configurations use as "type", e.g.
//   ln -s "$(command -v pipework-cni)" /opt/cni/bin/pipework
'use strict';
require('../dist/cni/main.js').run();
