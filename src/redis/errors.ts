/**
 * Backend failures become `StorageError` kind `Io` with the cause's message, minus secrets: passwords and
 * tokens configured for the connections and any `user:pass@` userinfo in URLs are replaced by `***`.
 */
import { StorageError } from '../contract/errors.js';

const URL_USERINFO = /([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi;

export function redact(text: string, secrets: readonly string[]): string {
  let out = text.replace(URL_USERINFO, '$1***@');
  for (const secret of secrets) {
    if (secret.length > 0) out = out.split(secret).join('***');
  }
  return out;
}

/** Passwords / tokens found in a connection URL (its userinfo), for redaction. */
export function urlSecrets(url: string): string[] {
  try {
    const u = new URL(url);
    // `scheme://token@host` carries the secret in the username position.
    const raw = u.password.length > 0 ? [u.password] : [u.username];
    return [...raw, ...raw.map((s) => decodeURIComponent(s))].filter((s) => s.length > 0);
  } catch {
    return [];
  }
}

export function toIoError(backend: string, err: unknown, secrets: readonly string[]): StorageError {
  if (err instanceof StorageError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return StorageError.io(`${backend}: ${redact(message, secrets)}`);
}
