/**
 * Logging for meshub: one place that configures LogTape, and category loggers for the rest.
 * Categories are `meshub·hub`, `meshub·punch`, `meshub·handshake`, `meshub·tun`, ...
 *
 * @module
 */
import {
  configure,
  getConsoleSink,
  getJsonLinesFormatter,
  getLogger,
  getTextFormatter,
  type Logger,
  type LogLevel,
  reset,
} from "@logtape/logtape";

/** Log levels accepted in configuration files and on the command line. */
export const LOG_LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"] as const;

/** One of {@linkcode LOG_LEVELS}. */
export type MeshubLogLevel = (typeof LOG_LEVELS)[number];

/** Returns the logger of one meshub subsystem, e.g. `log("hub")`. */
export function log(category: string): Logger {
  return getLogger(["meshub", category]);
}

/** Configures logging for the whole process; call once at start-up (again to change level). */
export async function setupLogging(
  level: MeshubLogLevel,
  format: "text" | "json" = "text",
): Promise<void> {
  const sink = format === "json"
    ? getConsoleSink({ formatter: getJsonLinesFormatter() })
    : getConsoleSink({
      // Values print bare (`node c1`, not `node "c1"`): logs are read by people first.
      formatter: getTextFormatter({
        timestamp: "time",
        category: ".",
        value: (v, inspect) => typeof v === "string" ? v : inspect(v),
      }),
    });
  await configure({
    reset: true,
    sinks: { console: sink },
    loggers: [
      { category: ["meshub"], lowestLevel: level as LogLevel, sinks: ["console"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
    ],
  });
}

/** Removes the logging configuration (tests call this to leave no state behind). */
export async function resetLogging(): Promise<void> {
  await reset();
}
