// gRPC server reflection (grpc.reflection.v1 and v1alpha) on the main port,
// answered from the descriptors protoc-gen-es generated: the services served,
// and each file with its dependencies, as serialized FileDescriptorProtos.
import { type DescFile, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import {
  type ServerReflectionRequest,
  ServerReflection as ServerReflectionV1,
} from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** Requests one reflection stream may make; a client needs a handful. */
const MAX_REQUESTS_PER_STREAM = 1_000;
/** Longest name echoed back in an error message. */
const MAX_ECHOED_NAME = 200;

/** google.rpc.Code values used in ErrorResponse. */
const INVALID_ARGUMENT = 3;
const NOT_FOUND = 5;

/** A reflection answer, shaped for both the v1 and v1alpha response types. */
type Answer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | {
      case: "allExtensionNumbersResponse";
      value: { baseTypeName: string; extensionNumber: number[] };
    }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/** The reflection index of one server: its services and the files that declare them. */
export class ReflectionIndex {
  private readonly files = new Map<string, DescFile>();
  private readonly symbols = new Map<string, DescFile>();
  private readonly messages = new Set<string>();
  private readonly encoded = new Map<DescFile, Uint8Array>();

  /**
   * @param services the fully qualified names of the services served, in the order listed.
   * @param files the files declaring them (their dependencies are found from these).
   */
  constructor(
    readonly services: readonly string[],
    files: readonly DescFile[],
  ) {
    for (const file of files) this.add(file);
  }

  /** The answer to one request. */
  answer(request: ServerReflectionRequest): Answer {
    const ask = request.messageRequest;
    switch (ask.case) {
      case "listServices":
        return {
          case: "listServicesResponse",
          value: { service: this.services.map((name) => ({ name })) },
        };
      case "fileByFilename": {
        const file = this.files.get(ask.value);
        return file === undefined
          ? notFound(`file ${echo(ask.value)} not found`)
          : this.withDependencies(file);
      }
      case "fileContainingSymbol": {
        const file = this.fileOfSymbol(ask.value);
        return file === undefined
          ? notFound(`symbol ${echo(ask.value)} not found`)
          : this.withDependencies(file);
      }
      case "fileContainingExtension":
        // No file served here declares an extension.
        return notFound(
          `extension ${ask.value.extensionNumber} of ${echo(ask.value.containingType)} not found`,
        );
      case "allExtensionNumbersOfType":
        return this.messages.has(ask.value)
          ? {
              case: "allExtensionNumbersResponse",
              value: { baseTypeName: ask.value, extensionNumber: [] },
            }
          : notFound(`type ${echo(ask.value)} not found`);
      default:
        return {
          case: "errorResponse",
          value: { errorCode: INVALID_ARGUMENT, errorMessage: "the request asks nothing" },
        };
    }
  }

  private add(file: DescFile): void {
    // DescFile.name drops ".proto"; reflection clients ask by the full path.
    const name = file.proto.name;
    if (this.files.has(name)) return;
    this.files.set(name, file);
    for (const dependency of file.dependencies) this.add(dependency);
    for (const message of file.messages) this.addMessage(file, message);
    for (const enumeration of file.enums) this.symbols.set(enumeration.typeName, file);
    for (const extension of file.extensions) this.symbols.set(extension.typeName, file);
    for (const service of file.services) {
      this.symbols.set(service.typeName, file);
      for (const method of service.methods) {
        this.symbols.set(`${service.typeName}.${method.name}`, file);
      }
    }
  }

  private addMessage(file: DescFile, message: DescFile["messages"][number]): void {
    this.symbols.set(message.typeName, file);
    this.messages.add(message.typeName);
    for (const field of message.fields) this.symbols.set(`${message.typeName}.${field.name}`, file);
    for (const nested of message.nestedMessages) this.addMessage(file, nested);
    for (const enumeration of message.nestedEnums) this.symbols.set(enumeration.typeName, file);
  }

  private fileOfSymbol(symbol: string): DescFile | undefined {
    // Some clients send a leading dot (a fully qualified reference in .proto syntax).
    return this.symbols.get(symbol.startsWith(".") ? symbol.slice(1) : symbol);
  }

  /** `file` first, then every file it imports, directly or not, each once. */
  private withDependencies(file: DescFile): Answer {
    const seen = new Set<DescFile>();
    const order: DescFile[] = [];
    const visit = (current: DescFile) => {
      if (seen.has(current)) return;
      seen.add(current);
      order.push(current);
      for (const dependency of current.dependencies) visit(dependency);
    };
    visit(file);
    return {
      case: "fileDescriptorResponse",
      value: { fileDescriptorProto: order.map((each) => this.encode(each)) },
    };
  }

  private encode(file: DescFile): Uint8Array {
    let bytes = this.encoded.get(file);
    if (bytes === undefined) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.encoded.set(file, bytes);
    }
    return bytes;
  }
}

function notFound(message: string): Answer {
  return { case: "errorResponse", value: { errorCode: NOT_FOUND, errorMessage: message } };
}

function echo(name: string): string {
  return JSON.stringify(name.slice(0, MAX_ECHOED_NAME));
}

/** The request as a plain value, to echo in `original_request` of either version. */
function original(request: ServerReflectionRequest) {
  const ask = request.messageRequest;
  const messageRequest =
    ask.case === "fileContainingExtension"
      ? {
          case: ask.case,
          value: {
            containingType: ask.value.containingType,
            extensionNumber: ask.value.extensionNumber,
          },
        }
      : ask;
  return { host: request.host, messageRequest };
}

/** Registers `grpc.reflection.v1.ServerReflection` and its v1alpha twin on `router`. */
export function registerReflectionService(router: ConnectRouter, index: ReflectionIndex): void {
  async function* serverReflectionInfo(requests: AsyncIterable<ServerReflectionRequest>) {
    let count = 0;
    for await (const request of requests) {
      if (++count > MAX_REQUESTS_PER_STREAM) {
        throw new ConnectError(
          `more than ${MAX_REQUESTS_PER_STREAM} requests on one reflection stream`,
          Code.ResourceExhausted,
        );
      }
      yield {
        validHost: request.host,
        originalRequest: original(request),
        messageResponse: index.answer(request),
      };
    }
  }
  router.service(ServerReflectionV1, { serverReflectionInfo });
  // v1alpha has the same messages under another package: the same answers.
  router.service(ServerReflectionV1Alpha, {
    serverReflectionInfo: (requests) =>
      serverReflectionInfo(requests as AsyncIterable<ServerReflectionRequest>),
  });
}
