// `epoch-provision ca init|check|fingerprint`: CA work on the controller only; no host is ever touched here.
import { X509Certificate } from 'node:crypto';
import { parseArgs } from 'node:util';
import { type CaKeyType, caKeyTypes, createCa } from '../../ca/create';
import { writeFleetCa } from '../../ca/key-storage';
import { loadP12Ca, loadPemCa, readSourceFile } from '../../ca/load';
import { type CaMaterial, certFingerprint } from '../../ca/material';
import { caProblems, defaultMinValidDays } from '../../ca/validate';
import { ConfigError } from '../../core/errors';
import { exitCodes } from '../exit-codes';
import { readHidden } from '../read-hidden';

const usage = `usage: epoch-provision ca init [--name CN] [--days N] [--key ec-p256|rsa-2048|rsa-4096] [--out DIR] [--passphrase-env VAR] [--force]
       epoch-provision ca check --cert FILE [--key FILE] [--key-passphrase-env VAR] [--min-valid-days N]
       epoch-provision ca check --p12 FILE --password-env VAR [--min-valid-days N]
       epoch-provision ca fingerprint FILE`;

export async function caCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    switch (sub) {
      case 'init':
        return await init(rest);
      case 'check':
        return check(rest);
      case 'fingerprint':
        return fingerprint(rest);
      case '--help':
      case '-h':
        console.log(usage);
        return exitCodes.ok;
      default:
        console.error(`epoch-provision ca: unknown subcommand ${JSON.stringify(sub ?? '')}\n${usage}`);
        return exitCodes.config;
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const line of err.message.split('\n')) console.error(`epoch-provision ca: ${line}`);
      return exitCodes.config;
    }
    throw err;
  }
}

type OptionSpec = NonNullable<NonNullable<Parameters<typeof parseArgs>[0]>['options']>;

function options(argv: string[], spec: OptionSpec, positionals = false): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const parsed = parseArgs({ args: argv, options: spec, allowPositionals: positionals, strict: true });
    return { values: parsed.values as Record<string, string | boolean | undefined>, positionals: parsed.positionals };
  } catch (err) {
    throw new ConfigError([{ location: '', message: `${(err as Error).message}\n${usage}` }]);
  }
}

function fromEnv(variable: string, what: string): string {
  const value = process.env[variable];
  if (value === undefined || value === '') throw new ConfigError([{ location: '', message: `${what}: environment variable ${variable} is not set` }]);
  return value;
}

function positiveInt(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new ConfigError([{ location: '', message: `${flag} must be a whole number, got ${JSON.stringify(value)}` }]);
  return n;
}

async function init(argv: string[]): Promise<number> {
  const { values } = options(argv, {
    name: { type: 'string', default: 'epoch-provision fleet CA' },
    days: { type: 'string', default: '1825' },
    key: { type: 'string', default: 'ec-p256' },
    out: { type: 'string', default: 'epoch-ca' },
    'passphrase-env': { type: 'string' },
    force: { type: 'boolean', default: false },
  });
  const keyType = values.key as string;
  if (!(caKeyTypes as readonly string[]).includes(keyType)) {
    throw new ConfigError([{ location: '', message: `--key must be one of ${caKeyTypes.join(', ')}, got ${JSON.stringify(keyType)}` }]);
  }
  const days = positiveInt('--days', values.days as string, 1825);
  if (days < 1) throw new ConfigError([{ location: '', message: '--days must be at least 1, got 0' }]);
  const passphrase = values['passphrase-env'] ? fromEnv(values['passphrase-env'] as string, '--passphrase-env') : await promptPassphrase(true);
  const material = createCa({ commonName: values.name as string, days, keyType: keyType as CaKeyType });
  let files: { certFile: string; keyFile: string };
  try {
    files = writeFleetCa(values.out as string, material, passphrase, values.force as boolean);
  } catch (err) {
    throw new ConfigError([{ location: '', message: (err as Error).message }]);
  }
  console.log(`created fleet CA "${values.name}" (${keyType}, ${days} days)`);
  console.log(`  certificate: ${files.certFile}`);
  console.log(`  key (encrypted PKCS#8, mode 0600): ${files.keyFile}`);
  console.log(`  sha256 fingerprint: ${certFingerprint(material.certPem)}`);
  return exitCodes.ok;
}

function check(argv: string[]): number {
  const { values } = options(argv, {
    cert: { type: 'string' },
    key: { type: 'string' },
    'key-passphrase-env': { type: 'string' },
    p12: { type: 'string' },
    'password-env': { type: 'string' },
    'min-valid-days': { type: 'string' },
  });
  const minValidDays = positiveInt('--min-valid-days', values['min-valid-days'] as string | undefined, defaultMinValidDays);
  let material: CaMaterial;
  if (values.p12 !== undefined) {
    if (values.cert !== undefined || values.key !== undefined) throw new ConfigError([{ location: '', message: 'give either --p12 or --cert/--key, not both' }]);
    if (values['password-env'] === undefined) throw new ConfigError([{ location: values.p12 as string, message: 'PKCS#12 needs --password-env VAR' }]);
    material = loadP12Ca(values.p12 as string, fromEnv(values['password-env'] as string, '--password-env'));
  } else if (values.cert !== undefined) {
    const passphrase = values['key-passphrase-env'] ? fromEnv(values['key-passphrase-env'] as string, '--key-passphrase-env') : undefined;
    material = loadPemCa(values.cert as string, values.key as string | undefined, passphrase);
  } else {
    throw new ConfigError([{ location: '', message: `ca check needs --cert FILE [--key FILE] or --p12 FILE\n${usage}` }]);
  }
  const problems = caProblems(material, { minValidDays });
  if (problems.length) throw new ConfigError(problems);
  const cert = readSubject(material.certPem);
  console.log(`ok: ${material.certSource}: CA "${cert.subject}", expires ${cert.notAfter}, sha256 ${certFingerprint(material.certPem)}`);
  return exitCodes.ok;
}

function fingerprint(argv: string[]): number {
  const { positionals } = options(argv, {}, true);
  const [file] = positionals;
  if (!file || positionals.length !== 1) throw new ConfigError([{ location: '', message: `ca fingerprint needs exactly one FILE\n${usage}` }]);
  const data = readSourceFile(file);
  try {
    console.log(certFingerprint(data));
  } catch {
    throw new ConfigError([{ location: file, message: 'malformed PEM: no decodable certificate' }]);
  }
  return exitCodes.ok;
}

function readSubject(certPem: string) {
  const cert = new X509Certificate(certPem);
  return { subject: cert.subject.replace(/\n/g, ', '), notAfter: new Date(cert.validTo).toISOString() };
}

/** Reads a passphrase from the terminal without echo; twice when creating. */
async function promptPassphrase(confirm: boolean): Promise<string> {
  if (!process.stdin.isTTY) throw new ConfigError([{ location: '', message: 'no passphrase: pass --passphrase-env VAR (stdin is not a terminal, so no prompt)' }]);
  const first = await readHidden('CA key passphrase: ');
  if (confirm && (await readHidden('again: ')) !== first) throw new ConfigError([{ location: '', message: 'the two passphrases differ' }]);
  return first;
}
