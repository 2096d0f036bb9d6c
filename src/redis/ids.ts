/**
 * Argument checks the Redis stores add to the contract's (`args.*`): Redis keeps strings as UTF-8, so an id
 * with a lone surrogate would be rewritten on the way in and two different ids could share a key.
 */
import * as args from '../contract/args.js';
import { StorageError } from '../contract/errors.js';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** `value`, or `Validation` when it holds a lone surrogate. */
export function wellFormed(name: string, value: string): string {
  if (LONE_SURROGATE.test(value)) {
    throw StorageError.validation(`${name} must be well-formed Unicode (no lone surrogates)`);
  }
  return value;
}

/** A non-blank id the store can key by. */
export const id = (name: string, value: unknown): string => wellFormed(name, args.id(name, value));
/** A text argument (may be blank) the store can write. */
export const text = (name: string, value: unknown): string => wellFormed(name, args.text(name, value));
