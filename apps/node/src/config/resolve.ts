// The node's settings: the config file (if any) with the flags laid over it
// (flags win), defaults filled in, and the checks that need both (this node
// is one of its members; the one-group flags do not fight the file's groups).
import type { ConnectPoolOptions } from "@distcache/transport-connect";
import { ConfigError, type LoadedConfig } from "./file.js";
import type { FlagSettings } from "./flags.js";
import type { GroupConfig, LogFormat, LogLevel } from "./schema.js";
import { formatHostPort, parseHostPort } from "./units.js";

/** Everything `distcache-node` runs with. */
export interface NodeConfig {
  /** Where the main port binds. Port 0: a free one, picked at start. */
  readonly listen: { readonly host: string; readonly port: number };
  /** How members name this node, when given; else the listen host and the bound port. */
  readonly advertise: string | undefined;
  /** Every member, when given; else this node alone. */
  readonly members: readonly string[] | undefined;
  /** Where the member list came from, for error messages. */
  readonly membersFrom: string;
  /** ConnectPool's options except admin (see {@link NodeConfig.admin}). */
  readonly pool: ConnectPoolOptions;
  /** The admin listener; `undefined` = off. Port 0: a free one. */
  readonly admin:
    | { readonly host: string; readonly port: number; readonly statusPage: boolean }
    | undefined;
  readonly log: { readonly level: LogLevel; readonly format: LogFormat | undefined };
  readonly groups: readonly GroupConfig[];
  /** Credential files, read by main.ts at start (and the peer secrets again on SIGHUP). */
  readonly security: SecurityConfig;
}

/** Where the node's credentials are; see the security flags. */
export interface SecurityConfig {
  readonly peerSecretFile: string | undefined;
  readonly insecurePeers: boolean;
  readonly tls: { readonly cert: string; readonly key: string; readonly ca?: string } | undefined;
  readonly clientTokenFile: string | undefined;
}

const DEFAULT_LISTEN = { host: "127.0.0.1", port: 8001 };
/** The admin port is the main port plus this, by default (8001 → 9001). */
export const ADMIN_PORT_OFFSET = 1_000;

/** Lays `flags` over `file`; throws {@link ConfigError} listing every conflict. */
export function resolveConfig(flags: FlagSettings, file?: LoadedConfig): NodeConfig {
  const config = file?.config ?? {};
  const problems: string[] = [];
  const fileListen =
    config.node?.listen === undefined
      ? undefined
      : (parseHostPort(config.node.listen) as { host: string; port: number });
  const listen = {
    host: flags.listen?.host ?? flags.host ?? fileListen?.host ?? DEFAULT_LISTEN.host,
    port: flags.listen?.port ?? flags.port ?? fileListen?.port ?? DEFAULT_LISTEN.port,
  };
  const advertise = flags.advertise ?? config.node?.advertise;
  if (advertise === undefined && (listen.host === "0.0.0.0" || listen.host === "::")) {
    problems.push(
      `listening on ${listen.host} needs an advertised address (--advertise HOST:PORT or node.advertise): members cannot call ${listen.host}`,
    );
  }

  const members = flags.members ?? config.members;
  const membersFrom =
    flags.members !== undefined
      ? "--peers"
      : file !== undefined && config.members !== undefined
        ? `${file.where(["members"])} (members)`
        : "";

  let groups: GroupConfig[] = config.groups ?? [];
  const groupFlags = (
    [
      "group",
      "sourceUrl",
      "loadTimeout",
      "awaitReplicas",
      "groupMaxLoadsInFlight",
      "groupMaxLoadsQueued",
    ] as const
  ).filter((k) => flags[k] !== undefined);
  if (groups.length > 0 && groupFlags.length > 0) {
    const names = {
      group: "--group",
      sourceUrl: "--source-url",
      loadTimeout: "--load-timeout",
      awaitReplicas: "--await-replicas",
      groupMaxLoadsInFlight: "--group-max-loads",
      groupMaxLoadsQueued: "--group-max-loads-queued",
    };
    problems.push(
      `${groupFlags.map((k) => names[k]).join(", ")}: the one-group flags cannot be combined with the groups of ${file?.where(["groups"])}`,
    );
  }
  if (groups.length === 0) {
    const { name, budget } = flags.group ?? { name: "scores", budget: 2048 };
    let source: GroupConfig["source"] = { type: "demo" };
    if (flags.sourceUrl !== undefined) {
      let url: URL | undefined;
      try {
        url = new URL(flags.sourceUrl);
      } catch {
        problems.push(`--source-url: invalid URL "${flags.sourceUrl}"`);
      }
      if (url !== undefined && url.protocol !== "http:") {
        problems.push(`--source-url must be http://, got "${flags.sourceUrl}"`);
      }
      source = { type: "http", url: flags.sourceUrl };
    }
    groups = [
      {
        name,
        budget,
        loadTimeout: flags.loadTimeout,
        awaitReplicas: flags.awaitReplicas,
        maxLoadsInFlight: flags.groupMaxLoadsInFlight,
        maxLoadsQueued: flags.groupMaxLoadsQueued,
        source,
      },
    ];
  }

  const adminFile = config.admin;
  let admin: NodeConfig["admin"];
  if (flags.adminPort !== false && !(adminFile === false && flags.adminPort === undefined)) {
    const defaultPort =
      listen.port === 0 || listen.port + ADMIN_PORT_OFFSET > 65_535
        ? 0
        : listen.port + ADMIN_PORT_OFFSET;
    admin = {
      host: flags.adminHost ?? (adminFile || undefined)?.host ?? "127.0.0.1",
      port: flags.adminPort ?? (adminFile || undefined)?.port ?? defaultPort,
      statusPage: (adminFile || undefined)?.statusPage ?? true,
    };
  }

  const fileSecurity = config.security;
  const tlsCert = flags.tlsCert ?? fileSecurity?.tls?.cert;
  const tlsKey = flags.tlsKey ?? fileSecurity?.tls?.key;
  const tlsCa = flags.tlsCa ?? fileSecurity?.tls?.ca;
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    problems.push("--tls-cert and --tls-key go together");
  }
  if (tlsCa !== undefined && tlsCert === undefined) {
    problems.push(
      "--tls-ca needs --tls-cert and --tls-key (this node's certificate is also its client certificate)",
    );
  }
  const security: SecurityConfig = {
    peerSecretFile: flags.peerSecretFile ?? fileSecurity?.peerSecretFile,
    insecurePeers: flags.insecurePeers ?? fileSecurity?.insecurePeers ?? false,
    tls:
      tlsCert === undefined || tlsKey === undefined
        ? undefined
        : { cert: tlsCert, key: tlsKey, ...(tlsCa === undefined ? {} : { ca: tlsCa }) },
    clientTokenFile: flags.clientTokenFile ?? fileSecurity?.clientTokenFile,
  };

  if (problems.length > 0) throw new ConfigError(problems);
  const server = { ...config.server, ...flags.server };
  return {
    listen,
    advertise,
    members,
    membersFrom,
    pool: {
      replicas: flags.replicas ?? config.replicas,
      maxLoadsInFlight: flags.maxLoadsInFlight ?? config.maxLoadsInFlight,
      maxLoadsQueued: flags.maxLoadsQueued ?? config.maxLoadsQueued,
      virtualNodes: config.virtualNodes,
      peer: {
        timeoutMs: flags.peerTimeoutMs ?? config.peer?.timeoutMs,
        breaker: config.peer?.breaker,
      },
      server,
    },
    admin,
    log: {
      level: flags.logLevel ?? config.log?.level ?? "info",
      format: flags.logFormat ?? config.log?.format,
    },
    groups,
    security,
  };
}

/** This node's member address once its main port is bound on `boundPort`. */
export function selfAddress(config: NodeConfig, boundPort: number): string {
  return config.advertise ?? formatHostPort(config.listen.host, boundPort);
}

/**
 * The member list with this node in it; throws {@link ConfigError} when the
 * given list leaves `self` out (it would be a member nobody else routes to).
 */
export function membersWith(config: NodeConfig, self: string): readonly string[] {
  if (config.members === undefined) return [self];
  if (!config.members.includes(self)) {
    throw new ConfigError([
      `${config.membersFrom}: this node (${self}) is not in its member list ${config.members.join(", ")}; ` +
        "name it exactly as in the list (--advertise or node.advertise), or add it",
    ]);
  }
  return config.members;
}
