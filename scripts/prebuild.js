#!/usr/bin/env node
// `npm pack` / `npm publish` (prepack): builds what binding.gyp makes into
// prebuilds/linux-<arch>/, so installing the package needs no compiler.
// The addon is Node-API (NAPI_VERSION in binding.gyp): one file per
// platform serves every Node version we support. node-gyp-build picks it
// at install and load time; `npm install --build-from-source` compiles
// instead. Executable targets of binding.gyp (e.g. a CNI shim) are carried
// next to the addon, under the same names as in build/Release.
//
// linux-x64 is built by this machine's compiler, linux-arm64 by Debian's
// cross toolchain (g++-aarch64-linux-gnu). Files are tagged glibc: on musl,
// node-gyp-build finds no match and install falls back to compiling.
// Cross builds go first, so build/ ends up holding this machine's build.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const prebuildify = require.resolve('prebuildify/bin.js');
// node-gyp: npm's own (npm run sets npm_config_node_gyp); headers: those of
// the Node running this, when it has them (no download).
const nodeGyp = process.env.npm_config_node_gyp;
const nodeDir = path.join(process.execPath, '..', '..');
const headers = fs.existsSync(path.join(nodeDir, 'include', 'node', 'node_api.h')) ? { npm_config_nodedir: nodeDir } : {};
const targets = [
  { arch: 'arm64', triplet: 'aarch64-linux-gnu' },
  { arch: 'x64', triplet: 'x86_64-linux-gnu' },
].sort((a, b) => Number(a.arch === os.arch()) - Number(b.arch === os.arch()));

fs.rmSync(path.join(root, 'prebuilds'), { recursive: true, force: true });
for (const { arch, triplet } of targets) {
  const cross = arch !== os.arch();
  const tool = (name) => (cross ? `${triplet}-${name}` : name);
  const env = {
    ...process.env,
    CC: tool('gcc'), CXX: tool('g++'), LINK: tool('g++'),
    PREBUILD_STRIP_BIN: tool('strip'),
    ...(nodeGyp ? { PREBUILD_NODE_GYP: nodeGyp } : {}),
    ...headers,
  };
  const r = spawnSync(process.execPath, [prebuildify, '--napi', '--strip', '--tag-libc', '--arch', arch,
    '--target', `node@${process.versions.node}`],
    { cwd: root, env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    process.stderr.write(r.stdout + r.stderr);
    console.error(`prebuild: the ${arch} build failed${cross ? ` (cross compiler: apt-get install g++-${triplet})` : ''}`);
    process.exit(1);
  }
  const release = path.join(root, 'build', 'Release');
  const out = path.join(root, 'prebuilds', `linux-${arch}`);
  for (const name of fs.readdirSync(release)) {
    const file = path.join(release, name);
    const st = fs.statSync(file);
    if (!st.isFile() || !(st.mode & 0o111) || name.endsWith('.node')) continue;
    fs.copyFileSync(file, path.join(out, name));
    fs.chmodSync(path.join(out, name), 0o755);
    const s = spawnSync(tool('strip'), ['--strip-all', path.join(out, name)], { stdio: 'inherit' });
    if (s.status !== 0) process.exit(1);
  }
  // prebuildify moved the addon out of build/Release: this machine's goes
  // back, so a working tree keeps loading its own build as before.
  if (!cross) fs.copyFileSync(path.join(out, 'pipework.glibc.node'), path.join(release, 'pipework.node'));
  console.error(`prebuild: prebuilds/linux-${arch}: ${fs.readdirSync(out).join(', ')}`);
}
