// From the tarball to a working host with no compiler: `npm pack` (which
// builds the prebuilt addons, scripts/prebuild.js), then a scratch project
// installs the tarball with g++, make and python3 hidden from PATH, loads
// it through require and import (types checked by tsc), runs both commands,
// and attaches a real netns. Only inside scripts/in-netns.js (the attach).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pathWithout, writeScratchProject } from '../helpers/scratch-project';

if (process.env.PIPEWORK_IN_NETNS !== '1') {
  throw new Error('test/package/pack.test.ts changes network namespaces: only inside scripts/in-netns.js');
}

const ROOT = resolve(__dirname, '../..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const work = mkdtempSync(join(tmpdir(), 'pipework-pack-'));
const project = join(work, 'project');
let tarball: string;
let files: string[];
let noCompiler: NodeJS.ProcessEnv;

/** A command in the scratch project, on the compiler-free PATH; throws with its output if it fails. */
function run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const r = spawnSync(cmd, args, { cwd: project, env: { ...noCompiler, ...opts.env }, input: opts.input ?? '', encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** ELF e_machine of a file: 62 x86-64, 183 AArch64. */
const elfMachine = (file: string) => readFileSync(file).readUInt16LE(18);

beforeAll(() => {
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const [info] = JSON.parse(out.slice(out.indexOf('[')));
  tarball = join(work, info.filename);
  files = info.files.map((f: { path: string }) => f.path);
  console.log(`npm pack: ${info.filename}, ${info.size} bytes packed, ${info.unpackedSize} unpacked, ${info.entryCount} files`);
  noCompiler = { ...process.env, PATH: pathWithout(join(work, 'bin')) };
  for (const k of Object.keys(noCompiler)) if (/^npm_/i.test(k)) delete noCompiler[k]; // not vitest's npm run context
}, 600_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the tarball', () => {
  it('holds what runs and nothing of tests, benchmarks or fixtures', () => {
    for (const f of files) expect(f).toMatch(/^(dist\/.*\.(js|mjs|d\.ts|d\.mts)|prebuilds\/linux-(x64|arm64)\/[^/]+|native\/[^/]+\.(cc|c|h)|binding\.gyp|bin\/[^/]+|package\.json|README\.md|LICENSE|CHANGELOG\.md)$/);
    expect(files.filter((f) => /(^|\/)(test|tests|bench|fixtures|examples|scripts|src)\//.test(f) || /\.test\./.test(f))).toEqual([]);
    expect(files).toEqual(expect.arrayContaining(['dist/index.js', 'dist/index.mjs', 'dist/index.d.ts', 'dist/index.d.mts', 'binding.gyp', 'LICENSE', 'CHANGELOG.md', 'README.md']));
  });

  it('carries the addon prebuilt for linux-x64 and linux-arm64 (glibc, Node-API)', () => {
    const dir = join(work, 'unpacked');
    execFileSync('mkdir', ['-p', dir]);
    execFileSync('tar', ['xzf', tarball, '-C', dir]);
    const x64 = join(dir, 'package/prebuilds/linux-x64/pipework.glibc.node');
    const arm64 = join(dir, 'package/prebuilds/linux-arm64/pipework.glibc.node');
    expect(elfMachine(x64)).toBe(62);
    expect(elfMachine(arm64)).toBe(183);
    // Node-API: the module registers through napi, not a version-bound node::ABI symbol.
    for (const f of [x64, arm64]) expect(readFileSync(f).includes('napi_register_module_v1')).toBe(true);
    // Every executable target of binding.gyp (the CNI shim) travels with the addon, for both architectures.
    const gyp = JSON.parse(readFileSync(join(ROOT, 'binding.gyp'), 'utf8').replace(/^\s*#.*$/gm, ''));
    const executables: string[] = gyp.targets.filter((t: { type?: string }) => t.type === 'executable').map((t: { target_name: string }) => t.target_name);
    for (const [arch, machine] of [['x64', 62], ['arm64', 183]] as const) {
      const there = readdirSync(join(dir, `package/prebuilds/linux-${arch}`));
      expect(there.sort()).toEqual(['pipework.glibc.node', ...executables].sort());
      for (const e of executables) expect(elfMachine(join(dir, `package/prebuilds/linux-${arch}`, e))).toBe(machine);
    }
  });
});

describe('installed on a host without g++, make or python3', () => {
  beforeAll(() => {
    execFileSync('mkdir', ['-p', project]);
    execFileSync('cp', [tarball, project]);
    writeScratchProject(project, tarball, ['typescript', '@types/node']);
    const t0 = process.hrtime.bigint();
    run('npm', ['ci', '--offline', '--no-audit', '--no-fund']);
    console.log(`install without a compiler: ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(1)} s`);
  }, 300_000);

  it('loads the prebuilt addon: nothing was compiled', () => {
    const dir = join(project, 'node_modules/pipework');
    expect(existsSync(join(dir, 'build'))).toBe(false);
    const chosen = run('node', ['-p', `require('node-gyp-build').path(${JSON.stringify(dir)})`]).trim();
    expect(chosen).toBe(join(dir, 'prebuilds/linux-x64/pipework.glibc.node'));
  });

  it('works through require and import, with types for both', () => {
    expect(run('node', ['-e', "const p = require('pipework'); console.log(typeof p.Session, typeof p.attach, typeof p.PipeworkError)"]).trim())
      .toBe('function function function');
    expect(run('node', ['--input-type=module', '-e', "import { Session, attach } from 'pipework'; import { createRequire } from 'node:module'; console.log(typeof Session, typeof attach, Session === createRequire(import.meta.url)('pipework').Session)"]).trim())
      .toBe('function function true');
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'nodenext', strict: true, noEmit: true, skipLibCheck: true, types: ['node'] }, files: ['esm.mts', 'cjs.cts'] }));
    writeFileSync(join(project, 'esm.mts'), [
      "import { Session, type AttachRequest, type AttachResult } from 'pipework';",
      "const request: AttachRequest = { hostInterface: 'br0', addresses: ['10.0.0.2/24'] };",
      'export async function go(s: Session): Promise<AttachResult> { return s.attach(42, request); }',
    ].join('\n'));
    writeFileSync(join(project, 'cjs.cts'), [
      "import pipework = require('pipework');",
      'export const s: pipework.Session = new pipework.Session();',
    ].join('\n'));
    run(join(project, 'node_modules/.bin/tsc'), ['-p', '.']);
    // The types are real: a misuse is refused, in both module systems.
    writeFileSync(join(project, 'esm.mts'), [
      "import { Session } from 'pipework';",
      'export const n: number = new Session();',
      // Internals (@internal, stripped from the published types) are not there to misuse.
      'export const onto = (s: Session) => s.attachOnto;',
      "export const faulty = (s: Session) => s.attach(42, { hostInterface: 'br0' }, { failAtStep: 0 });",
    ].join('\n'));
    writeFileSync(join(project, 'cjs.cts'), "import pipework = require('pipework');\nexport const n: string = pipework.attach;\n");
    const bad = spawnSync(join(project, 'node_modules/.bin/tsc'), ['-p', '.'], { cwd: project, env: noCompiler, encoding: 'utf8' });
    expect(bad.status).not.toBe(0);
    expect(bad.stdout).toMatch(/esm\.mts.*TS2322: Type 'Session' is not assignable to type 'number'/);
    expect(bad.stdout).toMatch(/cjs\.cts.*TS2322/);
    expect(bad.stdout).toMatch(/esm\.mts.*TS2339: Property 'attachOnto' does not exist on type 'Session'/);
    expect(bad.stdout).toMatch(/esm\.mts.*TS2353: Object literal may only specify known properties, and 'failAtStep'/);
  }, 180_000);

  it('npx pipework --version, pipework-cni VERSION, and the same through the prebuilt CNI shim', () => {
    expect(run('npx', ['--offline', 'pipework', '--version']).trim()).toBe(pkg.version);
    const version = JSON.parse(run('npx', ['--offline', 'pipework-cni'], { input: '{"cniVersion":"1.0.0"}', env: { CNI_COMMAND: 'VERSION' } }));
    expect(version.supportedVersions).toEqual(expect.arrayContaining(['1.0.0', '1.1.0']));
    // The prebuilt CNI shim, with no daemon to answer, runs the same Node plugin of its package.
    const shim = join(project, 'node_modules/pipework/prebuilds/linux-x64/pipework-cni-shim');
    const viaShim = run(shim, [], { input: '{"cniVersion":"1.0.0"}', env: { CNI_COMMAND: 'VERSION', PIPEWORK_SOCKET: join(work, 'no-daemon.sock') } });
    expect(JSON.parse(viaShim)).toEqual(version);
  });

  it('attaches a throwaway netns for real', () => {
    execFileSync('ip', ['netns', 'add', 'pwpack1']);
    try {
      run('npx', ['--offline', 'pipework', 'brpack', 'pwpack1', '10.88.0.2/24@10.88.0.1']);
      const [addr] = JSON.parse(execFileSync('ip', ['-n', 'pwpack1', '-j', 'addr', 'show', 'dev', 'eth1'], { encoding: 'utf8' }));
      expect(addr.flags).toContain('UP');
      expect(addr.addr_info.map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`)).toContain('10.88.0.2/24');
      const routes = JSON.parse(execFileSync('ip', ['-n', 'pwpack1', '-j', 'route', 'show', 'default'], { encoding: 'utf8' }));
      expect(routes[0]).toMatchObject({ gateway: '10.88.0.1', dev: 'eth1' });
      const [veth] = JSON.parse(execFileSync('ip', ['-j', 'link', 'show', 'master', 'brpack'], { encoding: 'utf8' }));
      expect(veth.ifname).toMatch(/^veth1pl/);
    } finally {
      spawnSync('ip', ['netns', 'del', 'pwpack1']);
      spawnSync('ip', ['link', 'del', 'brpack']);
    }
  });
});

describe('npm install --build-from-source', () => {
  it('compiles the addon instead of taking the prebuilt one (where a compiler exists)', () => {
    const dir = join(work, 'from-source');
    execFileSync('mkdir', ['-p', dir]);
    execFileSync('cp', [tarball, dir]);
    writeScratchProject(dir, tarball, []);
    const env = { ...process.env };
    for (const k of Object.keys(env)) if (/^npm_/i.test(k)) delete env[k];
    execFileSync('npm', ['ci', '--offline', '--no-audit', '--no-fund', '--build-from-source'], { cwd: dir, env, stdio: 'pipe' });
    const installed = join(dir, 'node_modules/pipework');
    expect(existsSync(join(installed, 'build/Release/pipework.node'))).toBe(true);
    const chosen = execFileSync('node', ['-p', `require('node-gyp-build').path(${JSON.stringify(installed)})`], { cwd: dir, env, encoding: 'utf8' }).trim();
    expect(chosen).toBe(join(installed, 'build/Release/pipework.node'));
    expect(execFileSync('node', ['-e', "const { createNetns } = require('pipework'); console.log(createNetns() > 2)"], { cwd: dir, env, encoding: 'utf8' }).trim()).toBe('true');
  }, 300_000);
});
