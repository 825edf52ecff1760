// The message of anything thrown: one helper for in-band answers, status texts
// and peer-failure reports on both the client and the server side.

/** `error.message` for an Error, else the value as a string. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
