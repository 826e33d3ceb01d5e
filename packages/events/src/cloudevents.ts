import {
  fromBinary,
  fromJson,
  fromJsonString,
  toBinary,
  toJsonString,
  type JsonValue,
  type MessageShape,
} from "@bufbuild/protobuf";
import { headers as natsHeaders, Match, type MsgHdrs } from "@nats-io/nats-core";
import { EVENT_TYPES, eventRegistry, isEventType, type EventType } from "./catalogue.ts";
import type { EventFormat } from "./config.ts";

/**
 * CloudEvents 1.0 over NATS in binary content mode: the event's attributes
 * travel as `ce-` headers, its data as the message payload, encoded as the
 * catalogue's message for its type (binary protobuf or the proto3 JSON
 * mapping).
 */

export const CONTENT_TYPES = {
  protobuf: "application/protobuf",
  json: "application/json",
} as const satisfies Record<EventFormat, string>;

export type DataContentType = (typeof CONTENT_TYPES)[EventFormat];

/** The decoded message of an event of type T. */
export type EventMessage<T extends EventType = EventType> = MessageShape<(typeof EVENT_TYPES)[T]>;

/** The CloudEvents attributes of one of our events. */
export interface CloudEventAttributes {
  specversion: "1.0";
  /** A UUID; also the Nats-Msg-Id. */
  id: string;
  /** Who published it: /order-service or /inventory-service. */
  source: string;
  /** Also the NATS subject. */
  type: EventType;
  /** The order or product the event is about. */
  subject: string;
  time: Date;
  datacontenttype: DataContentType;
  /** The full name of the payload's message, e.g. orders.v1.OrderConfirmed. */
  dataschema: string;
}

/** An event ready to go on the wire. */
export interface EncodedEvent {
  /** The NATS subject: the event's type. */
  subject: string;
  /** The Nats-Msg-Id to publish it with: the event id. */
  msgID: string;
  headers: MsgHdrs;
  payload: Uint8Array;
}

/** An event as the outbox holds it: data in the proto3 JSON mapping. */
export interface OutgoingEvent {
  id: string;
  type: string;
  subject: string;
  time: Date;
  data: unknown;
}

/** Why an event cannot be encoded or a message cannot be read as an event. */
export class EventFormatError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "EventFormatError";
  }
}

const HEADER = {
  specversion: "ce-specversion",
  id: "ce-id",
  source: "ce-source",
  type: "ce-type",
  subject: "ce-subject",
  time: "ce-time",
  datacontenttype: "ce-datacontenttype",
  dataschema: "ce-dataschema",
} as const satisfies Record<keyof CloudEventAttributes, string>;

/** The NATS headers that carry `attributes`. */
export function cloudEventHeaders(attributes: CloudEventAttributes): MsgHdrs {
  const h = natsHeaders();
  h.set(HEADER.specversion, attributes.specversion);
  h.set(HEADER.id, attributes.id);
  h.set(HEADER.source, attributes.source);
  h.set(HEADER.type, attributes.type);
  h.set(HEADER.subject, attributes.subject);
  h.set(HEADER.time, attributes.time.toISOString());
  h.set(HEADER.datacontenttype, attributes.datacontenttype);
  h.set(HEADER.dataschema, attributes.dataschema);
  return h;
}

/**
 * Encodes an outbox event for publishing: validates its data against the
 * catalogue's message for its type (the data must be that message in the
 * proto3 JSON mapping, with no unknown fields) and writes it in `format`.
 * Throws EventFormatError for an unknown type or data that is not the message.
 */
export function encodeEvent(event: OutgoingEvent, options: { source: string; format: EventFormat }): EncodedEvent {
  if (!isEventType(event.type)) throw new EventFormatError(`event ${event.id}: unknown type "${event.type}"`);
  const schema = EVENT_TYPES[event.type];
  return {
    subject: event.type,
    msgID: event.id,
    headers: cloudEventHeaders({
      specversion: "1.0",
      id: event.id,
      source: options.source,
      type: event.type,
      subject: event.subject,
      time: event.time,
      datacontenttype: CONTENT_TYPES[options.format],
      dataschema: schema.typeName,
    }),
    payload: encodeEventData(event.type, event.data, options.format, event.id),
  };
}

/** The payload of an event of `type` whose data is `data` in the proto3 JSON mapping. */
export function encodeEventData(type: EventType, data: unknown, format: EventFormat, id = "?"): Uint8Array {
  const schema = EVENT_TYPES[type];
  let message: EventMessage;
  try {
    message = fromJson(schema, data as JsonValue, { registry: eventRegistry });
  } catch (e) {
    throw new EventFormatError(`event ${id}: its data is not a ${schema.typeName}: ${(e as Error).message}`, { cause: e });
  }
  return format === "protobuf"
    ? toBinary(schema, message)
    : new TextEncoder().encode(toJsonString(schema, message, { registry: eventRegistry }));
}

/** The outcome of reading a message as an event: the value, or what is wrong with it. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * Reads and checks the CloudEvents attributes of a message: every required
 * one present, specversion 1.0, a type of the catalogue, a time in RFC 3339,
 * a content type we can decode and, when given, a dataschema that is the
 * type's message. What is wrong is reported, never thrown.
 */
export function parseCloudEventHeaders(h: MsgHdrs | undefined): Parsed<CloudEventAttributes> {
  if (!h) return { ok: false, error: "no headers: not a CloudEvent (missing ce-specversion, ce-id, ce-source, ce-type)" };
  const get = (name: string) => {
    const v = h.get(name, Match.IgnoreCase);
    return v === "" ? undefined : v;
  };
  const missing = (["specversion", "id", "source", "type", "time", "datacontenttype"] as const)
    .filter((k) => get(HEADER[k]) === undefined)
    .map((k) => HEADER[k]);
  if (missing.length) return { ok: false, error: `missing CloudEvents attribute${missing.length > 1 ? "s" : ""} ${missing.join(", ")}` };
  const specversion = get(HEADER.specversion)!;
  if (specversion !== "1.0") return { ok: false, error: `unsupported ce-specversion "${specversion}" (expected 1.0)` };
  const type = get(HEADER.type)!;
  if (!isEventType(type)) return { ok: false, error: `unknown ce-type "${type}"` };
  const timeText = get(HEADER.time)!;
  const time = new Date(timeText);
  if (!RFC3339.test(timeText) || Number.isNaN(time.getTime())) return { ok: false, error: `ce-time "${timeText}" is not an RFC 3339 time` };
  const contentType = get(HEADER.datacontenttype)!.split(";")[0]!.trim().toLowerCase();
  if (contentType !== CONTENT_TYPES.protobuf && contentType !== CONTENT_TYPES.json) {
    return { ok: false, error: `unsupported ce-datacontenttype "${contentType}" (expected ${CONTENT_TYPES.protobuf} or ${CONTENT_TYPES.json})` };
  }
  const typeName = EVENT_TYPES[type].typeName;
  const dataschema = get(HEADER.dataschema) ?? typeName;
  if (dataschema !== typeName) return { ok: false, error: `ce-dataschema "${dataschema}" is not ${typeName}, the message of ${type}` };
  return {
    ok: true,
    value: {
      specversion: "1.0",
      id: get(HEADER.id)!,
      source: get(HEADER.source)!,
      type,
      subject: get(HEADER.subject) ?? "",
      time,
      datacontenttype: contentType,
      dataschema,
    },
  };
}

/** Decodes the payload of an event of `type` sent as `contentType`. Throws EventFormatError when it is not that message. */
export function decodeEventData<T extends EventType>(type: T, contentType: DataContentType, payload: Uint8Array): EventMessage<T> {
  const schema = EVENT_TYPES[type];
  try {
    return (
      contentType === CONTENT_TYPES.protobuf
        ? fromBinary(schema, payload)
        : fromJsonString(schema, new TextDecoder("utf-8", { fatal: true }).decode(payload), { registry: eventRegistry })
    ) as EventMessage<T>;
  } catch (e) {
    throw new EventFormatError(`payload is not a ${schema.typeName} in ${contentType}: ${(e as Error).message}`, { cause: e });
  }
}

/** An event read from a message: its type (narrowing on it types `data`), its attributes and its decoded data. */
export type DecodedEvent = {
  [T in EventType]: { type: T; attributes: CloudEventAttributes & { type: T }; data: EventMessage<T> };
}[EventType];

/** Reads a message as one of our events; what is wrong with it is reported, never thrown. */
export function decodeEvent(h: MsgHdrs | undefined, payload: Uint8Array): Parsed<DecodedEvent> {
  const attributes = parseCloudEventHeaders(h);
  if (!attributes.ok) return attributes;
  try {
    const data = decodeEventData(attributes.value.type, attributes.value.datacontenttype, payload);
    return { ok: true, value: { type: attributes.value.type, attributes: attributes.value, data } as DecodedEvent };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}
