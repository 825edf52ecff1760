// The demo source's rows (the `demo` source type and `pnpm demo`).

/**
 * The demo's source of truth: the reference's three scores plus k0…k999 =
 * v0…v999, so load tests have keys to spread over the ring.
 */
export function demoRows(): Map<string, string> {
  const rows = new Map([
    ["Tom", "630"],
    ["Jack", "589"],
    ["Sam", "567"],
  ]);
  for (let i = 0; i < 1_000; i++) rows.set(`k${i}`, `v${i}`);
  return rows;
}
