/**
 * Watching the data-path loops: they run until the client stops, and one that ends early (an
 * unexpected error from the TUN or the socket) must not leave a client that looks alive (timers,
 * hub registration, status) but moves no packets.
 *
 * @module
 */

/** Raised by the client when a data-path loop ended while it was meant to run. */
export class DataPathError extends Error {
  /** Creates the error; `cause` is what the loop threw, if it threw. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DataPathError";
  }
}

/**
 * Calls `onFailure` once, with a {@linkcode DataPathError}, when any of `loops` settles while
 * `stopping()` is still false; a loop that ends after the stop began is the normal shutdown.
 */
export function superviseLoops(
  loops: readonly Promise<void>[],
  stopping: () => boolean,
  onFailure: (err: DataPathError) => void,
): void {
  let failed = false;
  const fail = (err: DataPathError) => {
    if (failed || stopping()) return;
    failed = true;
    onFailure(err);
  };
  for (const loop of loops) {
    loop.then(
      () => fail(new DataPathError("data path loop ended unexpectedly")),
      (cause) =>
        fail(
          new DataPathError(
            `data path failed: ${cause instanceof Error ? cause.message : String(cause)}`,
            { cause },
          ),
        ),
    );
  }
}
