// Parameters shared by the CA-related modules, and the controller-side loading that runs while params are
// validated, i.e. before the first SSH connection: a bad CA file never gets near a host.
import { z } from 'zod';
import { loadP12Ca, loadPemCa, parseCertPem, readSourceFile } from '../../ca/load';
import type { CaMaterial } from '../../ca/material';
import { caProblems, defaultMinValidDays } from '../../ca/validate';
import { ConfigError } from '../../core/errors';

export const defaultCaCertPath = '/etc/epoch-agent/ca/ca.crt';
export const defaultCaKeyPath = '/etc/epoch-agent/ca/ca.key';

/** Where a module finds the CA certificate it works with (public material only). */
export const certPemSource = {
  /** PEM text of the certificate. */
  cert_pem: z.string().optional(),
  /** A certificate file on the controller; loaded into cert_pem during validation. */
  cert_file: z.string().optional(),
  /** Used when neither is given: the certificate on the host itself (per-host mode). */
  host_cert_file: z.string().startsWith('/').default(defaultCaCertPath),
};

export function normalisePem(pem: string): string {
  return `${pem.replace(/\r\n/g, '\n').trim()}\n`;
}

type Ctx = z.core.$RefinementCtx;

function addConfigIssues(ctx: Ctx, err: unknown, path: string[]): void {
  if (!(err instanceof ConfigError)) throw err;
  // The message is the whole story (`FILE: problem`): no echo of the params after it.
  for (const p of err.problems) ctx.addIssue({ code: 'custom', path, message: p.location ? `${p.location}: ${p.message}` : p.message, params: { omitValue: true } });
}

/** Transform step: reads cert_file on the controller into cert_pem. */
export function loadCertFile<T extends { cert_pem?: string | undefined; cert_file?: string | undefined }>(value: T, ctx: Ctx): T {
  if (value.cert_file === undefined) return value;
  if (value.cert_pem !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['cert_file'], message: 'give cert_file or cert_pem, not both' });
    return value;
  }
  try {
    const cert = parseCertPem(value.cert_file, readSourceFile(value.cert_file));
    return { ...value, cert_pem: normalisePem(cert.toString()) };
  } catch (err) {
    addConfigIssues(ctx, err, ['cert_file']);
    return value;
  }
}

export interface CaFileParams {
  cert_file?: string | undefined;
  key_file?: string | undefined;
  key_passphrase_env?: string | undefined;
  p12_file?: string | undefined;
  p12_password_env?: string | undefined;
  min_valid_days: number;
}

/** Loads and validates a fleet/import CA on the controller; every problem becomes a params issue. */
export function loadCaMaterial(p: CaFileParams, ctx: Ctx): CaMaterial | undefined {
  const env = (name: string | undefined, flag: string): string | undefined => {
    if (name === undefined) return undefined;
    const value = process.env[name];
    if (value === undefined || value === '') {
      ctx.addIssue({ code: 'custom', path: [flag], message: `environment variable ${name} is not set` });
      return undefined;
    }
    return value;
  };
  try {
    let material: CaMaterial;
    if (p.p12_file !== undefined) {
      if (p.cert_file !== undefined || p.key_file !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['p12_file'], message: 'give p12_file or cert_file/key_file, not both' });
        return undefined;
      }
      if (p.p12_password_env === undefined) {
        ctx.addIssue({ code: 'custom', path: ['p12_password_env'], message: `${p.p12_file}: PKCS#12 needs p12_password_env` });
        return undefined;
      }
      const password = env(p.p12_password_env, 'p12_password_env');
      if (password === undefined) return undefined;
      material = loadP12Ca(p.p12_file, password);
    } else if (p.cert_file !== undefined) {
      const passphrase = env(p.key_passphrase_env, 'key_passphrase_env');
      if (p.key_passphrase_env !== undefined && passphrase === undefined) return undefined;
      material = loadPemCa(p.cert_file, p.key_file, passphrase);
    } else {
      ctx.addIssue({ code: 'custom', path: ['cert_file'], message: 'fleet and import modes need cert_file (+ key_file) or p12_file' });
      return undefined;
    }
    const problems = caProblems(material, { minValidDays: p.min_valid_days });
    if (problems.length) {
      addConfigIssues(ctx, new ConfigError(problems), []);
      return undefined;
    }
    return material;
  } catch (err) {
    addConfigIssues(ctx, err, []);
    return undefined;
  }
}

export { defaultMinValidDays };
