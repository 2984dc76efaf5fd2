/** The CNI specification versions this plugin implements (its VERSION answer). */
export const SUPPORTED_VERSIONS = ['1.0.0', '1.1.0'] as const;
export const LATEST_VERSION = '1.1.0';

/** Semantic versions compared (x.y.z, pre-release ignored): negative, 0 or positive. */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => v.split('-')[0].split('.').map((n) => Number(n) || 0);
  const [x, y] = [parse(a), parse(b)];
  for (let i = 0; i < 3; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d) return d;
  }
  return 0;
}

export const isSemver = (v: unknown): v is string => typeof v === 'string' && /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(v);

export const isSupported = (v: string) => (SUPPORTED_VERSIONS as readonly string[]).includes(v);
