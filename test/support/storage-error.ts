/**
 * The `StorageError` that `action` throws (or rejects with); fails the test when it throws nothing, or
 * something else.
 */
import { expect } from 'vitest';
import { StorageError } from '../../src/contract/errors.js';

export async function errorOf(action: () => unknown): Promise<StorageError> {
  try {
    await action();
  } catch (err) {
    expect(err).toBeInstanceOf(StorageError);
    return err as StorageError;
  }
  throw new Error('expected an error');
}
