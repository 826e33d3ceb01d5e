import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { STREAMS, type StreamName } from "./catalogue.ts";

const NANOS_PER_SECOND = 1_000_000_000;

/** How long a stream keeps an event: a week, so a consumer that was away for a weekend still gets everything. */
export const STREAM_MAX_AGE_SECONDS = 7 * 24 * 3600;

/**
 * How long JetStream remembers a Nats-Msg-Id (the event id) to drop a second
 * publish of it. The relay publishes, then marks the rows published; a relay
 * killed in between (or whose mark failed) leaves the rows unpublished and
 * publishes them again as soon as it, or another replica, claims them: within
 * seconds, well inside two minutes, so the stream keeps one copy. A repeat
 * later than that (a relay down for longer with an unacknowledged batch) is
 * recognised by the consumers' inbox, which keys on the same id.
 */
export const STREAM_DUPLICATE_WINDOW_SECONDS = 120;

/** The part of a stream's configuration this module owns; anything else an operator set is left alone. */
export function streamConfig(name: StreamName): Pick<
  StreamConfig,
  "name" | "subjects" | "storage" | "retention" | "discard" | "max_age" | "duplicate_window"
> {
  return {
    name,
    subjects: [...STREAMS[name].subjects],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    max_age: STREAM_MAX_AGE_SECONDS * NANOS_PER_SECOND,
    duplicate_window: STREAM_DUPLICATE_WINDOW_SECONDS * NANOS_PER_SECOND,
  };
}

/** What ensureStreams did to each stream. */
export type EnsuredStreams = Record<string, "created" | "updated" | "unchanged">;

/**
 * Makes the event streams exist as the catalogue describes them: each one
 * missing is added; one present whose subjects, limits or deduplication
 * window differ is updated in place. Nothing is ever deleted or purged, so
 * it is safe to call at every start and every reconnection, from every
 * replica at once. A stream that cannot become what is wanted without losing
 * its data (another storage type) is reported as an error.
 */
export async function ensureStreams(jsm: JetStreamManager, names?: readonly StreamName[]): Promise<EnsuredStreams> {
  const result: EnsuredStreams = {};
  for (const name of names ?? (Object.keys(STREAMS) as StreamName[])) {
    result[name] = await ensureStream(jsm, name);
  }
  return result;
}

async function ensureStream(jsm: JetStreamManager, name: StreamName): Promise<"created" | "updated" | "unchanged"> {
  const wanted = streamConfig(name);
  let current: StreamConfig | undefined;
  try {
    current = (await jsm.streams.info(name)).config;
  } catch (e) {
    if (!isStreamNotFound(e)) throw e;
  }
  if (!current) {
    try {
      await jsm.streams.add(wanted);
      return "created";
    } catch (e) {
      // Another replica may have added it in between: then it is there, and compared below.
      const added = await jsm.streams.info(name).catch(() => undefined);
      if (!added) throw e;
      current = added.config;
    }
  }
  if (current.storage !== wanted.storage) {
    throw new Error(
      `stream ${name} exists with ${current.storage} storage, not ${wanted.storage}; ` +
        "the storage of a stream cannot change without recreating it, which this service never does (it would lose its events)",
    );
  }
  if (differs(current, wanted)) {
    const { name: _name, storage: _storage, ...changes } = wanted;
    await jsm.streams.update(name, { ...current, ...changes });
    return "updated";
  }
  return "unchanged";
}

function differs(current: StreamConfig, wanted: ReturnType<typeof streamConfig>): boolean {
  const sameSubjects =
    current.subjects?.length === wanted.subjects.length && wanted.subjects.every((s) => current.subjects?.includes(s));
  return (
    !sameSubjects ||
    current.retention !== wanted.retention ||
    current.discard !== wanted.discard ||
    current.max_age !== wanted.max_age ||
    current.duplicate_window !== wanted.duplicate_window
  );
}

export function isStreamNotFound(e: unknown): boolean {
  return e instanceof JetStreamApiError && e.code === JetStreamApiCodes.StreamNotFound;
}
