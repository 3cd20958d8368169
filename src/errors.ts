/**
 * Errors that cross module and process boundaries. Control-flow errors are recognised by
 * `name` (and `code`), not only `instanceof`, so they survive serialization.
 */
export const EXIT_CODES = {
  ok: 0,
  failure: 1,
  usage: 2,
  config: 78,
} as const;

export class MoonmindError extends Error {
  override name = "MoonmindError";
  /** What the operator can run or change to fix it, when known. */
  readonly remedy: string | undefined;
  constructor(message: string, options: { cause?: unknown; remedy?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.remedy = options.remedy;
  }
}

/** Configuration or authentication missing at start-up: exit 78. */
export class ConfigError extends MoonmindError {
  override name = "ConfigError";
  readonly exitCode = EXIT_CODES.config;
}

/** Bad command-line usage: exit 2. */
export class UsageError extends MoonmindError {
  override name = "UsageError";
  readonly exitCode = EXIT_CODES.usage;
}

/** The job can never succeed as given: terminate, do not retry. */
export class PermanentError extends MoonmindError {
  override name = "PermanentError";
  readonly code: string;
  constructor(code: string, message: string, options: { cause?: unknown; remedy?: string } = {}) {
    super(message, options);
    this.code = code;
  }
}

/** The job may succeed on another attempt. */
export class RetryableError extends MoonmindError {
  override name = "RetryableError";
  readonly code: string;
  constructor(code: string, message: string, options: { cause?: unknown; remedy?: string } = {}) {
    super(message, options);
    this.code = code;
  }
}

export function isPermanent(err: unknown): boolean {
  return err instanceof Error && err.name === "PermanentError";
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

export function errorCode(err: unknown, fallback = "INTERNAL"): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : fallback;
}
