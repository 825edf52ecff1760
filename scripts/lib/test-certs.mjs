// Certificates for tests, made with Debian's `openssl` in a temporary folder:
// a CA, and leaf certificates it signs with the subject alternative names asked.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Makes a CA and one leaf per entry of `leaves` (name → SAN list such as
 * "IP:127.0.0.1,DNS:localhost"), all PEM. Returns their text and paths; call
 * `remove()` when done.
 */
export function makeTestCertificates(leaves) {
  const dir = mkdtempSync(join(tmpdir(), "distcache-certs-"));
  const openssl = (...args) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  openssl(
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=distcache test CA",
  );
  const result = {
    dir,
    ca: readFileSync(join(dir, "ca.pem"), "utf8"),
    caPath: join(dir, "ca.pem"),
    leaves: {},
  };
  for (const [name, san] of Object.entries(leaves)) {
    writeFileSync(
      join(dir, `${name}.ext`),
      `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n`,
    );
    openssl(
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${name}`,
    );
    openssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
    );
    result.leaves[name] = {
      cert: readFileSync(join(dir, `${name}.pem`), "utf8"),
      key: readFileSync(join(dir, `${name}.key`), "utf8"),
      certPath: join(dir, `${name}.pem`),
      keyPath: join(dir, `${name}.key`),
    };
  }
  result.remove = () => rmSync(dir, { recursive: true, force: true });
  return result;
}
