/**
 * Errors the user can fix, and how the command line reports them.
 *
 * Start-up code throws a {@linkcode UserError} (or a subclass such as `ConfigError`) for a
 * mistake in the configuration, the command line or the environment; `main.ts` catches everything
 * and calls {@linkcode reportAndExit}, which prints one clear line for those and a stack trace for
 * anything else, because anything else is a bug in meshub.
 *
 * @module
 */

/** Exit code for a mistake the user can fix (same as a usage error). */
export const USER_ERROR_EXIT_CODE = 2;

/** Exit code for a bug in meshub. */
export const INTERNAL_ERROR_EXIT_CODE = 1;

/** Options of {@linkcode UserError}. */
export interface UserErrorOptions extends ErrorOptions {
  /** Process exit code; defaults to {@linkcode USER_ERROR_EXIT_CODE}. */
  exitCode?: number;
}

/**
 * A mistake the user can fix. Its `message` is one complete line meant for the user; it must
 * never contain secrets.
 */
export class UserError extends Error {
  /** Process exit code when this error ends the program. */
  readonly exitCode: number;

  /** Creates a user error; put the underlying error, if any, in `options.cause`. */
  constructor(message: string, options: UserErrorOptions = {}) {
    super(message, options.cause === undefined ? {} : { cause: options.cause });
    this.name = "UserError";
    this.exitCode = options.exitCode ?? USER_ERROR_EXIT_CODE;
  }
}

/** What {@linkcode reportAndExit} prints and the code it exits with. */
export interface ErrorReport {
  /** Text for stderr, without a trailing newline. */
  text: string;
  /** Process exit code. */
  exitCode: number;
}

/** Describes `err` the way {@linkcode reportAndExit} reports it; separate so it can be tested. */
export function describeError(err: unknown): ErrorReport {
  if (err instanceof UserError) {
    return { text: `meshub: ${err.message}`, exitCode: err.exitCode };
  }
  if (err instanceof Error) {
    // The stack starts with "Name: message"; print the message on the first line anyway so the
    // report reads the same whether or not a stack is available.
    const stack = err.stack?.split("\n").slice(1).join("\n") ?? "";
    const text = `meshub: internal error: ${err.message}` + (stack ? `\n${stack}` : "");
    return { text, exitCode: INTERNAL_ERROR_EXIT_CODE };
  }
  return { text: `meshub: internal error: ${String(err)}`, exitCode: INTERNAL_ERROR_EXIT_CODE };
}

/**
 * Prints `err` to stderr and exits: a {@linkcode UserError} as `meshub: <message>` with its exit
 * code; anything else as `meshub: internal error: <message>` plus the stack, with exit code 1.
 */
export function reportAndExit(err: unknown): never {
  const { text, exitCode } = describeError(err);
  console.error(text);
  Deno.exit(exitCode);
}
