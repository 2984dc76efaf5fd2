// The layers of src/ (docs/architecture.md), lowest first. A module may
// import from its own folder and from the layers below its own; never from
// a layer above, and nothing may form a cycle. `npm run lint:deps` checks it.
const layers = [
  ['errors'],
  ['addressing'],
  ['native'],
  ['netlink'],
  ['run'],
  ['guest'],
  ['plan'],
  ['exec'],
  ['bulk'],
  ['session'],
  // Front ends: none imports another, except as allowedSideways says.
  ['cli', 'cni', 'docker', 'daemon'],
  // The entries: main.ts dispatches the pipework command's subcommands,
  // demo.ts is `npm run demo`, index.ts is the library's public API (and
  // index.mts its ES module face).
  ['main\\.ts', 'demo\\.ts', 'index\\.ts', 'index\\.mts'],
];
// The imports allowed within a layer: docker/watch runs CLI command lines
// from container labels; the daemon serves CNI and CLI calls in-process;
// index.mts re-exports index.ts.
const allowedSideways = { docker: ['cli'], daemon: ['cli', 'cni'], 'index\\.mts': ['index\\.ts'] };
const label = (name) => name.replace('\\.', '.');

const folder = (name) => (name.includes('\\.') ? `^src/${name}$` : `^src/${name}/`);
const forbidden = [
  {
    name: 'no-circular',
    comment: 'A cycle makes two modules one: load order, lazy requires and layering all break down.',
    severity: 'error',
    from: {},
    to: { circular: true },
  },
  {
    name: 'no-public-barrel-inside',
    comment: 'src/index.ts is the public API; code inside src/ imports the module that defines a thing.',
    severity: 'error',
    from: { path: '^src/', pathNot: '^src/index\\.mts$' },
    to: { path: '^src/index\\.ts$' },
  },
];
layers.forEach((rank, i) => {
  const above = layers.slice(i + 1).flat();
  for (const name of rank) {
    if (above.length)
      forbidden.push({
        name: `layer-${label(name)}-imports-above`,
        comment: `${name} may import only from the layers below it (see docs/architecture.md).`,
        severity: 'error',
        from: { path: folder(name) },
        to: { path: above.map(folder) },
      });
    const peers = rank.filter((p) => p !== name && !(allowedSideways[name] ?? []).includes(p));
    if (peers.length)
      forbidden.push({
        name: `layer-${label(name)}-imports-sideways`,
        comment: `${name} may not import from ${peers.join(', ')}, on its own layer.`,
        severity: 'error',
        from: { path: folder(name) },
        to: { path: peers.map(folder) },
      });
  }
});

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count too: a type from a layer above is a backward dependency all the same.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    moduleSystems: ['cjs', 'es6'],
  },
};
