import { pino, type Logger } from "pino";

/** The service's JSON logger (one object per line on stdout). */
export function createLogger(level: string): Logger {
  return pino({ name: "inventory-service", level });
}
