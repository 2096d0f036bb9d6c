/**
 * StorageError mirrors the Rust `StorageError` enum used by mailbox stores: a `kind`, the inner `detail`
 * and a `message` equal to the Rust display text, so logs and parity tests read the same in both runtimes.
 */
export type StorageErrorKind =
  'Validation' | 'NotFound' | 'AlreadyExists' | 'VersionConflict' | 'Io' | 'Serialization';

const DISPLAY_PREFIX: Record<Exclude<StorageErrorKind, 'VersionConflict'>, string> = {
  Validation: 'validation error',
  NotFound: 'not found',
  AlreadyExists: 'already exists',
  Io: 'io error',
  Serialization: 'serialization error',
};

export class StorageError extends Error {
  readonly kind: StorageErrorKind;
  /** The inner message (for VersionConflict: `expected <e>, actual <a>`). */
  readonly detail: string;
  readonly expected?: number;
  readonly actual?: number;

  private constructor(kind: StorageErrorKind, detail: string, message: string, versions?: [number, number]) {
    super(message);
    this.name = 'StorageError';
    this.kind = kind;
    this.detail = detail;
    if (versions) {
      this.expected = versions[0];
      this.actual = versions[1];
    }
  }

  static validation(detail: string): StorageError {
    return StorageError.simple('Validation', detail);
  }
  static notFound(detail: string): StorageError {
    return StorageError.simple('NotFound', detail);
  }
  static alreadyExists(detail: string): StorageError {
    return StorageError.simple('AlreadyExists', detail);
  }
  static io(detail: string): StorageError {
    return StorageError.simple('Io', detail);
  }
  static serialization(detail: string): StorageError {
    return StorageError.simple('Serialization', detail);
  }
  static versionConflict(expected: number, actual: number): StorageError {
    const detail = `expected ${expected}, actual ${actual}`;
    return new StorageError('VersionConflict', detail, `version conflict: ${detail}`, [expected, actual]);
  }

  /** Rebuild an error from its wire parts (used when errors come back from Lua or another process). */
  static fromKind(kind: StorageErrorKind, detail: string, versions?: [number, number]): StorageError {
    if (kind === 'VersionConflict') {
      const [e, a] = versions ?? [0, 1];
      return StorageError.versionConflict(e, a);
    }
    return StorageError.simple(kind, detail);
  }

  private static simple(kind: Exclude<StorageErrorKind, 'VersionConflict'>, detail: string): StorageError {
    return new StorageError(kind, detail, `${DISPLAY_PREFIX[kind]}: ${detail}`);
  }
}

export function isStorageError(err: unknown, kind?: StorageErrorKind): err is StorageError {
  return err instanceof StorageError && (kind === undefined || err.kind === kind);
}
