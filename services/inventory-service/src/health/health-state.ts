import { HealthCheckResponse_ServingStatus } from "@ecommerce/gen/grpc/health/v1/health_pb.ts";

/** The serving statuses of the gRPC health protocol. */
export const ServingStatus = HealthCheckResponse_ServingStatus;
/** A serving status of the gRPC health protocol (never an unknown number). */
export type ServingStatus = (typeof ServingStatus)[keyof typeof ServingStatus];

/**
 * The serving status of each service of this server, as the gRPC health
 * protocol reports it. The empty name "" is the server as a whole, which
 * Kubernetes probes and grpc_health_probe check by default.
 */
export interface HealthState {
  /** The status of a service, or undefined when the service is unknown. */
  get(service: string): ServingStatus | undefined;
  /** Every known service and its status. */
  list(): ReadonlyMap<string, ServingStatus>;
  /** Sets the status of a service, making it known. Ignored after shutdown. */
  setStatus(service: string, status: ServingStatus): void;
  /**
   * The status of `service` now (SERVICE_UNKNOWN while unknown), then each
   * change, until `signal` aborts or the state shuts down. A watcher that
   * falls behind gets the latest status, not every one in between.
   */
  watch(service: string, signal: AbortSignal): AsyncIterable<ServingStatus>;
  /**
   * Marks every service NOT_SERVING for good and ends every watch after
   * telling it so: a server going down should not hold open streams.
   */
  shutdown(): void;
}

/**
 * Creates the health state, starting with the given statuses (by default,
 * the whole server SERVING).
 */
export function createHealthState(initial: Readonly<Record<string, ServingStatus>> = { "": ServingStatus.SERVING }): HealthState {
  const statuses = new Map(Object.entries(initial));
  // Wakes the watchers of a service when its status changes or on shutdown.
  const watchers = new Map<string, Set<() => void>>();
  let shutDown = false;

  const notify = (service: string) => watchers.get(service)?.forEach((wake) => wake());

  const set = (service: string, status: ServingStatus) => {
    if (statuses.get(service) === status) return;
    statuses.set(service, status);
    notify(service);
  };

  async function* watch(service: string, signal: AbortSignal): AsyncIterable<ServingStatus> {
    let wake: (() => void) | undefined;
    let changed = true;
    const listener = () => {
      changed = true;
      wake?.();
    };
    const listeners = watchers.get(service) ?? new Set();
    watchers.set(service, listeners.add(listener));
    signal.addEventListener("abort", listener);
    try {
      let last: ServingStatus | undefined;
      while (!signal.aborted) {
        if (changed) {
          changed = false;
          const status = statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
          if (status !== last) yield (last = status);
          continue;
        }
        if (shutDown) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      listeners.delete(listener);
      if (listeners.size === 0) watchers.delete(service);
      signal.removeEventListener("abort", listener);
    }
  }

  return {
    get: (service) => statuses.get(service),
    list: () => new Map(statuses),
    setStatus: (service, status) => {
      if (!shutDown) set(service, status);
    },
    watch,
    shutdown: () => {
      if (shutDown) return;
      shutDown = true;
      for (const service of statuses.keys()) set(service, ServingStatus.NOT_SERVING);
      for (const service of watchers.keys()) notify(service);
    },
  };
}
