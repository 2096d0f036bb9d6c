/**
 * The `--baseline` peers (BullMQ, GroupMQ) are dev dependencies: they are imported only when asked for, and a
 * missing one is reported by name before any workload runs.
 */

const isModuleNotFound = (err: unknown): boolean =>
  typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'ERR_MODULE_NOT_FOUND';

/** Import `pkg` for `--baseline <pkg>`, or throw an error that says what is missing and how to get it. */
export async function loadPeerPackage<T>(pkg: string, importer: () => Promise<T>): Promise<T> {
  try {
    return await importer();
  } catch (err) {
    const why = isModuleNotFound(err)
      ? `is not installed here (it is a dev dependency: npm install --save-dev ${pkg})`
      : `could not be loaded: ${(err as Error).message}`;
    throw new Error(`--baseline ${pkg} needs the '${pkg}' package, which ${why}`, { cause: err });
  }
}
