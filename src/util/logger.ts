/** A minimal structured logger hook; every component takes one and defaults to silence. */
export interface Logger {
  debug?(msg: string, fields?: Record<string, unknown>): void;
  info?(msg: string, fields?: Record<string, unknown>): void;
  warn?(msg: string, fields?: Record<string, unknown>): void;
  error?(msg: string, fields?: Record<string, unknown>): void;
}

export const silentLogger: Logger = {};

/** A console logger for the CLI and examples. */
export const consoleLogger: Logger = {
  debug: () => {},
  info: (msg, fields) => console.error(`[info] ${msg}`, fields ?? ''),
  warn: (msg, fields) => console.error(`[warn] ${msg}`, fields ?? ''),
  error: (msg, fields) => console.error(`[error] ${msg}`, fields ?? ''),
};
