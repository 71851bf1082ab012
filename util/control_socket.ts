/**
 * The local control socket of a meshub process (client or hub): a Unix domain socket speaking
 * JSON lines. Not the hot path, so readability wins over bytes.
 *
 * Protocol, version 1. The caller connects, writes one request line, reads one response line:
 *
 * ```text
 * → {"v":1,"cmd":"status"}
 * ← {"v":1,"ok":true,"result":{...}}
 * → {"v":1,"cmd":"ping","peer":"c2","timeoutMs":2000}
 * ← {"v":1,"ok":false,"error":"no member \"c9\""}
 * ```
 *
 * A request with another `v` gets `{"v":1,"ok":false,"error":"unsupported protocol version 2"}`,
 * so a newer CLI talking to an older daemon fails clearly. Lines are at most
 * {@linkcode MAX_LINE_BYTES}; a connection idle for {@linkcode IDLE_TIMEOUT_MS} is closed.
 *
 * Ownership: the socket directory is created 0700, the socket chmod 0600 (only its owner, root
 * for a client, can talk to it); a socket that still answers means another process owns the path
 * and start-up is refused; a dead one (connection refused) is removed. The file is removed on
 * close.
 *
 * @module
 */
import { dirname } from "node:path";
import { UserError } from "./cli_error.ts";

/** Version of the control protocol spoken here. */
export const CONTROL_PROTOCOL_VERSION = 1;
/** Longest request or response line. */
export const MAX_LINE_BYTES = 1 << 20;
/** Exit code of `meshub status`/`ping` when no process answers at the control socket. */
export const NOT_RUNNING_EXIT_CODE = 3;
/** A connection that sends nothing for this long is closed. */
export const IDLE_TIMEOUT_MS = 10_000;

/** A request: a command name and its arguments. */
export interface ControlRequest {
  /** Protocol version, {@linkcode CONTROL_PROTOCOL_VERSION}. */
  v: number;
  /** Command, e.g. `status`. */
  cmd: string;
  /** Further arguments of the command. */
  [arg: string]: unknown;
}

/** A response line. */
export type ControlResponse =
  | { v: number; ok: true; result: unknown }
  | { v: number; ok: false; error: string };

/** Answers one request; throw {@linkcode ControlCommandError} for a clean error response. */
export type ControlHandler = (request: ControlRequest) => Promise<unknown> | unknown;

/** An error whose message is sent back to the caller as the response. */
export class ControlCommandError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "ControlCommandError";
  }
}

/** No process answers at the control socket, or it answered nonsense. One printable line. */
export class ControlConnectError extends UserError {
  /** Creates the error; the process exit code is {@linkcode NOT_RUNNING_EXIT_CODE}. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, { ...options, exitCode: NOT_RUNNING_EXIT_CODE });
    this.name = "ControlConnectError";
  }
}

/** Parses a request line; returns an error string for anything that is not a request. */
export function parseRequest(line: string): { request: ControlRequest } | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { error: "request is not JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { error: "request must be a JSON object" };
  }
  const r = value as Record<string, unknown>;
  if (r.v !== CONTROL_PROTOCOL_VERSION) {
    return { error: `unsupported protocol version ${JSON.stringify(r.v)}` };
  }
  if (typeof r.cmd !== "string" || r.cmd === "") return { error: "request needs a cmd" };
  return { request: r as ControlRequest };
}

/** Answers one request line with one response line (without the newline). Never throws. */
export async function answer(line: string, handler: ControlHandler): Promise<string> {
  const parsed = parseRequest(line);
  let response: ControlResponse;
  if ("error" in parsed) {
    response = { v: CONTROL_PROTOCOL_VERSION, ok: false, error: parsed.error };
  } else {
    try {
      response = { v: CONTROL_PROTOCOL_VERSION, ok: true, result: await handler(parsed.request) };
    } catch (err) {
      const message = err instanceof ControlCommandError
        ? err.message
        : `internal error: ${err instanceof Error ? err.message : String(err)}`;
      response = { v: CONTROL_PROTOCOL_VERSION, ok: false, error: message };
    }
  }
  return JSON.stringify(response);
}

/** A listening control socket. */
export class ControlServer implements AsyncDisposable {
  /** The socket path. */
  readonly path: string;
  readonly #listener: Deno.Listener<Deno.UnixConn, Deno.UnixAddr>;
  readonly #conns = new Set<Deno.UnixConn>();
  readonly #loop: Promise<void>;
  #handler: ControlHandler;
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(path: string, listener: Deno.Listener<Deno.UnixConn, Deno.UnixAddr>) {
    this.path = path;
    this.#listener = listener;
    this.#handler = () => {
      throw new ControlCommandError("starting up, try again");
    };
    this.#loop = this.#accept();
  }

  /**
   * Claims `path` and listens. Throws {@linkcode UserError} when another live process owns it,
   * when it is something other than a socket, or when the directory cannot be made.
   */
  static async open(path: string): Promise<ControlServer> {
    const dir = dirname(path);
    try {
      await Deno.stat(dir);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw userError(path, err);
      try {
        await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
        await Deno.chmod(dir, 0o700);
      } catch (err2) {
        throw userError(path, err2);
      }
    }
    let info: Deno.FileInfo | null = null;
    try {
      info = await Deno.lstat(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw userError(path, err);
    }
    if (info !== null) {
      if (!info.isSocket) {
        throw new UserError(`control socket ${path}: exists and is not a socket; not touching it`);
      }
      if (await answers(path)) {
        throw new UserError(
          `control socket ${path}: another meshub process is running there ` +
            `(set control.socket to use another path)`,
        );
      }
      await Deno.remove(path).catch(() => {}); // left over from a process that died
    }
    let listener: Deno.Listener<Deno.UnixConn, Deno.UnixAddr>;
    try {
      listener = Deno.listen({ transport: "unix", path });
    } catch (err) {
      throw userError(path, err);
    }
    try {
      await Deno.chmod(path, 0o600);
    } catch (err) {
      listener.close();
      await Deno.remove(path).catch(() => {});
      throw userError(path, err);
    }
    return new ControlServer(path, listener);
  }

  /** Sets what answers requests (until then callers are told to try again). */
  setHandler(handler: ControlHandler): void {
    this.#handler = handler;
  }

  async #accept(): Promise<void> {
    while (!this.#closed) {
      let conn: Deno.UnixConn;
      try {
        conn = await this.#listener.accept();
      } catch {
        return; // closed
      }
      this.#conns.add(conn);
      this.#serve(conn).finally(() => {
        this.#conns.delete(conn);
        try {
          conn.close();
        } catch {
          // already closed
        }
      });
    }
  }

  async #serve(conn: Deno.UnixConn): Promise<void> {
    const decoder = new TextDecoder();
    const encoder = new TextEncoder();
    const buf = new Uint8Array(64 * 1024);
    let pending = "";
    while (!this.#closed) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const idle = new Promise<null>((r) => (timer = setTimeout(() => r(null), IDLE_TIMEOUT_MS)));
      let n: number | null;
      try {
        n = await Promise.race([conn.read(buf), idle]);
      } catch {
        return;
      } finally {
        clearTimeout(timer);
      }
      if (n === null) return;
      pending += decoder.decode(buf.subarray(0, n), { stream: true });
      if (pending.length > MAX_LINE_BYTES) return;
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.trim() === "") continue;
        const out = encoder.encode((await answer(line, this.#handler)) + "\n");
        try {
          for (let off = 0; off < out.length;) off += await conn.write(out.subarray(off));
        } catch {
          return;
        }
      }
    }
  }

  /** Stops listening, closes open connections and removes the socket file. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      try {
        this.#listener.close();
      } catch {
        // already closed
      }
      for (const c of this.#conns) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
      await this.#loop;
      await Deno.remove(this.path).catch(() => {});
    })();
    return this.#closing;
  }

  /** Same as {@linkcode ControlServer.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function userError(path: string, err: unknown): UserError {
  let why = err instanceof Error ? err.message : String(err);
  if (err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable) {
    why = "permission denied (run as root, or set control.socket to a writable path)";
  }
  return new UserError(`control socket ${path}: ${why}`, { cause: err });
}

/** True when a process accepts connections at `path`. */
async function answers(path: string): Promise<boolean> {
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Sends one request to the control socket at `path` and returns the result. Throws
 * {@linkcode ControlConnectError} when nothing listens there (with `what` naming the daemon, e.g.
 * "meshub client"), and {@linkcode ControlCommandError} for an error response.
 */
export async function controlRequest(
  path: string,
  request: Omit<ControlRequest, "v">,
  options: { timeoutMs?: number; what?: string } = {},
): Promise<unknown> {
  const what = options.what ?? "meshub process";
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path });
  } catch (err) {
    let why: string;
    if (err instanceof Deno.errors.NotFound) why = "no such socket";
    else if (err instanceof Deno.errors.ConnectionRefused) why = "nothing listens there";
    else if (err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable) {
      why = "permission denied (run as root)";
    } else why = err instanceof Error ? err.message : String(err);
    throw new ControlConnectError(`no ${what} is running (control socket ${path}: ${why})`, {
      cause: err,
    });
  }
  const timeoutMs = options.timeoutMs ?? 10_000;
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    const line = JSON.stringify({ v: CONTROL_PROTOCOL_VERSION, ...request }) + "\n";
    await conn.write(new TextEncoder().encode(line));
    const decoder = new TextDecoder();
    const buf = new Uint8Array(64 * 1024);
    let text = "";
    while (!text.includes("\n")) {
      let n: number | null;
      try {
        n = await conn.read(buf);
      } catch {
        n = null;
      }
      if (n === null) {
        throw new ControlConnectError(`${what} at ${path} closed the connection without answering`);
      }
      text += decoder.decode(buf.subarray(0, n), { stream: true });
      if (text.length > MAX_LINE_BYTES) {
        throw new ControlConnectError(`${what} at ${path}: response too long`);
      }
    }
    let response: ControlResponse;
    try {
      response = JSON.parse(text.slice(0, text.indexOf("\n")));
    } catch {
      throw new ControlConnectError(`${what} at ${path} answered something that is not JSON`);
    }
    if (response.ok) return response.result;
    throw new ControlCommandError(response.error);
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // closed by the timeout
    }
  }
}
