// Static passthrough: SNI globs, IP literals and CIDRs whose connections are relayed without interception.
import { BlockList, isIP } from 'node:net';

export interface PassthroughMatch {
  rule: string;
}

/** `*` matches any run of characters (dots included): `*.bank.example` covers a.bank.example and a.b.bank.example. */
function globToRegExp(glob: string): RegExp {
  const escaped = glob.toLowerCase().replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`);
}

export function parsePassthroughRule(rule: string): { kind: 'ip' | 'cidr' | 'sni'; family?: 'ipv4' | 'ipv6' } {
  const slash = rule.indexOf('/');
  if (slash >= 0) {
    const addr = rule.slice(0, slash);
    const bits = Number(rule.slice(slash + 1));
    const v = isIP(addr);
    const max = v === 4 ? 32 : 128;
    if (v === 0 || !Number.isInteger(bits) || bits < 0 || bits > max || rule.slice(slash + 1) === '') {
      throw new Error(`passthrough rule ${JSON.stringify(rule)}: expected a CIDR like 198.18.0.0/15 or fd00::/8`);
    }
    return { kind: 'cidr', family: v === 4 ? 'ipv4' : 'ipv6' };
  }
  const v = isIP(rule);
  if (v) return { kind: 'ip', family: v === 4 ? 'ipv4' : 'ipv6' };
  if (!/^[a-z0-9*_.-]+$/i.test(rule) || rule.length > 253) {
    throw new Error(`passthrough rule ${JSON.stringify(rule)}: expected an SNI glob (*.example.com), an IP or a CIDR`);
  }
  return { kind: 'sni' };
}

/** Strips the ::ffff: prefix of v4-mapped addresses, as dual-stack listeners report IPv4 peers that way. */
export function unmapIp(ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? m[1]! : ip;
}

export class StaticPassthrough {
  private readonly globs: { rule: string; re: RegExp }[] = [];
  private readonly blocks: { rule: string; list: BlockList; family: 'ipv4' | 'ipv6' }[] = [];

  constructor(readonly rules: readonly string[]) {
    for (const rule of rules) {
      const parsed = parsePassthroughRule(rule);
      if (parsed.kind === 'sni') {
        this.globs.push({ rule, re: globToRegExp(rule) });
        continue;
      }
      const list = new BlockList();
      const family = parsed.family!;
      if (parsed.kind === 'ip') list.addAddress(rule, family);
      else {
        const [addr, bits] = rule.split('/');
        list.addSubnet(addr!, Number(bits), family);
      }
      this.blocks.push({ rule, list, family });
    }
  }

  match(sni: string | null, ip: string): PassthroughMatch | null {
    if (sni) {
      for (const g of this.globs) if (g.re.test(sni)) return { rule: g.rule };
    }
    const addr = unmapIp(ip);
    const family = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    for (const b of this.blocks) if (b.family === family && b.list.check(addr, family)) return { rule: b.rule };
    return null;
  }
}
