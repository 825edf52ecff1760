await import("@bufbuild/protobuf");
await import("/tmp/probe/var3.mjs");
