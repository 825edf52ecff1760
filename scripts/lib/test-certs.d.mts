/** One leaf certificate and its key: PEM text and file paths. */
export interface TestLeaf {
  cert: string;
  key: string;
  certPath: string;
  keyPath: string;
}
/** A test CA and the leaves it signed; `remove()` deletes the folder. */
export interface TestCertificates {
  dir: string;
  ca: string;
  caPath: string;
  leaves: Record<string, TestLeaf>;
  remove(): void;
}
/** Makes a CA and one leaf per entry (name → SAN list, e.g. "IP:127.0.0.1,DNS:localhost"). */
export function makeTestCertificates(leaves: Record<string, string>): TestCertificates;
