/**
 * The events settings, the same in both services. Each service reads them
 * with its own configuration readers, so that every bad variable is
 * reported with the rest of its configuration, in one message.
 */
export interface EventsConfig {
  /** NATS_URL: the JetStream server events are published to; unset, publishing is off (events are still recorded and listable). */
  readonly natsUrl: string | undefined;
  /** EVENTS_FORMAT: the payload's encoding on the wire, binary protobuf (default) or the proto3 JSON mapping. */
  readonly format: EventFormat;
  /** EVENTS_RETENTION_HOURS: how long the outbox keeps an event after publishing it (or after recording it, with publishing off). */
  readonly retentionHours: number;
  /** EVENTS_BATCH_MAX: most events the relay claims and publishes at once. */
  readonly batchMax: number;
  /** EVENTS_POLL_INTERVAL_MS: the relay looks for work this often even when no notification wakes it. */
  readonly pollIntervalMs: number;
  /** EVENTS_PUBLISH_TIMEOUT_MS: how long a publish may wait for JetStream's acknowledgement. */
  readonly publishTimeoutMs: number;
  /** EVENTS_LAG_WARN_SECONDS: the log warns while the oldest unpublished event is older than this. */
  readonly lagWarnSeconds: number;
}

export const EVENT_FORMATS = ["protobuf", "json"] as const;
export type EventFormat = (typeof EVENT_FORMATS)[number];

/** A service's integer reader: the variable's value within [min, max], or the fallback with a problem reported. */
export type ReadInteger = (name: string, fallback: number, min: number, max: number) => number;

/** Reads the events settings from `env`, adding what is wrong with them to `problems`. */
export function readEventsConfig(env: Record<string, string | undefined>, integer: ReadInteger, problems: string[]): EventsConfig {
  const natsUrl = env.NATS_URL?.trim() || undefined;
  if (natsUrl !== undefined && !/^(nats|tls):\/\/[^\s/]+/.test(natsUrl)) {
    problems.push(`NATS_URL must be a URL such as nats://127.0.0.1:4222 (several servers separated by commas), got "${natsUrl}"`);
  }
  const format = (env.EVENTS_FORMAT?.trim() || "protobuf") as EventFormat;
  if (!EVENT_FORMATS.includes(format)) problems.push(`EVENTS_FORMAT must be one of ${EVENT_FORMATS.join(", ")}, got "${format}"`);
  return Object.freeze({
    natsUrl,
    format,
    retentionHours: integer("EVENTS_RETENTION_HOURS", 72, 1, 24 * 365),
    batchMax: integer("EVENTS_BATCH_MAX", 500, 1, 10_000),
    pollIntervalMs: integer("EVENTS_POLL_INTERVAL_MS", 1000, 10, 600_000),
    publishTimeoutMs: integer("EVENTS_PUBLISH_TIMEOUT_MS", 5000, 100, 600_000),
    lagWarnSeconds: integer("EVENTS_LAG_WARN_SECONDS", 60, 1, 86_400),
  });
}
