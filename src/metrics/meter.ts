/**
 * Where the instruments come from. The library convention of OpenTelemetry: record through
 * `@opentelemetry/api` and let the application decide; without an installed SDK every call is a no-op.
 * Here "no SDK" goes one step further: nothing is instrumented at all, so an uninstrumented store or Mailbox
 * runs exactly the code it ran before metrics existed.
 *
 * The API has no proxy for meters (unlike tracers): a meter taken before the SDK is installed stays a no-op.
 * So install the SDK (`metrics.setGlobalMeterProvider`) before creating stores and Mailboxes, or pass a
 * `meterProvider` to `instrumentStore` / `instrumentMailbox` explicitly.
 */
import { createNoopMeter, metrics } from '@opentelemetry/api';
import type { Meter, MeterProvider } from '@opentelemetry/api';
import { METER_NAME } from './names.js';

/** Options shared by `instrumentStore` and `instrumentMailbox`. */
export interface MetricsOptions {
  /** Default: the global meter provider (`metrics.getMeterProvider()`). */
  meterProvider?: MeterProvider;
}

const VERSION = '0.1.0';

/** The meter to record with, or null when the provider is the API's no-op one (no SDK installed). */
export function activeMeter(options?: MetricsOptions): Meter | null {
  const provider = options?.meterProvider ?? metrics.getMeterProvider();
  const meter = provider.getMeter(METER_NAME, VERSION);
  return meter === createNoopMeter() ? null : meter;
}
