// Dropping root after the listeners are bound and the CA key is read. Node has no getpwnam, so the account is
// read from /etc/passwd (read-only); a numeric uid is accepted as is (its primary gid from passwd, else same as uid).
import { readFileSync } from 'node:fs';

export interface Account {
  name: string;
  uid: number;
  gid: number;
}

export function resolveAccount(user: string, passwd = '/etc/passwd'): Account {
  const lines = readFileSync(passwd, 'utf8').split('\n');
  const numeric = /^\d+$/.test(user) ? Number(user) : null;
  for (const line of lines) {
    const [name, , uid, gid] = line.split(':');
    if (!name || uid === undefined || gid === undefined) continue;
    if (name === user || (numeric !== null && Number(uid) === numeric)) return { name, uid: Number(uid), gid: Number(gid) };
  }
  if (numeric !== null) return { name: user, uid: numeric, gid: numeric };
  throw new Error(`user ${JSON.stringify(user)} not found in ${passwd}`);
}

export function dropPrivileges(account: Account): void {
  if (typeof process.getuid !== 'function' || !process.setuid || !process.setgid || !process.setgroups) {
    throw new Error('cannot change user on this platform');
  }
  if (process.getuid() !== 0) {
    if (process.getuid() === account.uid) return;
    throw new Error(`--user ${account.name} needs root to switch from uid ${process.getuid()}`);
  }
  process.setgroups([account.gid]);
  process.setgid(account.gid);
  process.setuid(account.uid);
  if (process.getuid() !== account.uid || process.geteuid?.() !== account.uid) {
    throw new Error(`still uid ${process.getuid()} after setuid(${account.uid})`);
  }
}
