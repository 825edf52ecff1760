await import("@connectrpc/connect");
await import("/tmp/probe/var3.mjs");
