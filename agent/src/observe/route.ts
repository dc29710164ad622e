// Turns a raw request target into a low-cardinality route: the query and fragment are dropped, then the
// user's rules run, then ids are templated segment by segment (numbers, UUIDs, hex hashes → `{id}`).
// Only the result ever leaves the host.

export interface RouteRule {
  /** A regular expression (JavaScript syntax) matched against the path, all occurrences replaced. */
  match: string;
  replace: string;
}

const uuidRe = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const numberRe = /^\d+$/;
// Hex hashes: 8+ hex digits with at least one decimal digit, so words like `deadbeef-cafe` stay readable.
const hexRe = /^(?=[^0-9]*[0-9])[0-9a-f]{8,}$/i;
const printableRe = /^[\x21-\x7e]*$/;

export const maxRouteLength = 200;

export class RouteTemplater {
  private readonly rules: { re: RegExp; replace: string }[];
  private readonly cache = new Map<string, string>();

  constructor(rules: readonly RouteRule[] = []) {
    this.rules = rules.map((rule, i) => {
      try {
        return { re: new RegExp(rule.match, 'g'), replace: rule.replace };
      } catch (err) {
        throw new Error(`observe.routeRules[${i}].match: invalid regular expression ${JSON.stringify(rule.match)}: ${(err as Error).message}`);
      }
    });
  }

  route(target: string): string {
    const cached = this.cache.get(target);
    if (cached !== undefined) return cached;
    const route = this.compute(target);
    if (this.cache.size >= 4096) this.cache.clear(); // bounded memo; raw targets stay on this host anyway
    this.cache.set(target, route);
    return route;
  }

  private compute(target: string): string {
    if (target === '*') return '*';
    if (target === '') return '/';
    let path = target;
    if (!path.startsWith('/')) {
      // absolute-form (`https://host/path`) keeps its path; authority-form (CONNECT host:port) has none.
      const scheme = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(path);
      if (!scheme) return '{authority}';
      path = path.slice(scheme[0].length) || '/';
    }
    const cut = path.search(/[?#]/);
    if (cut !== -1) path = path.slice(0, cut);
    for (const { re, replace } of this.rules) path = path.replace(re, replace);
    const segments = path.split('/');
    for (let k = 0; k < segments.length; k++) {
      const s = segments[k]!;
      if (s === '' || s.startsWith('{')) continue;
      if (numberRe.test(s) || uuidRe.test(s) || hexRe.test(s) || !printableRe.test(s)) segments[k] = '{id}';
    }
    let route = segments.join('/');
    if (route === '') route = '/';
    if (route.length > maxRouteLength) route = `${route.slice(0, maxRouteLength)}{truncated}`;
    return route;
  }
}
