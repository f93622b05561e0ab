#!/usr/bin/env python3
"""A minimal MCP Guard client in Python, written from proto/mcpguard/v1/executor.proto alone.

The gRPC stubs are generated from the .proto at run time with grpcio-tools (nothing generated is
checked in), so this file shows everything an agent in another language needs:

    python mcp_guard_client.py --proto PATH/TO/proto --target HOST:PORT --token TOKEN --code 'return 1'
    python mcp_guard_client.py ... --stream        # ExecuteStream: events as they happen
    python mcp_guard_client.py ... --list-tools    # ListTools

It prints one JSON object per line: for Execute the outcome, for --stream each event and then the
outcome, for --list-tools the tools. Needs `grpcio` and `grpcio-tools` (PyPI).
"""

import argparse
import importlib
import json
import os
import sys
import tempfile


def generate(proto_root, out_dir):
    """Generate executor_pb2 / executor_pb2_grpc from the .proto into out_dir and import them."""
    from grpc_tools import protoc
    import grpc_tools

    proto_file = os.path.join(proto_root, "mcpguard", "v1", "executor.proto")
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        proto_file,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed for {proto_file}")
    sys.path.insert(0, out_dir)
    pb2 = importlib.import_module("mcpguard.v1.executor_pb2")
    pb2_grpc = importlib.import_module("mcpguard.v1.executor_pb2_grpc")
    return pb2, pb2_grpc


def outcome_dict(outcome):
    """The Outcome message as a plain dict shaped like `mcp-guard exec`'s JSON."""
    from google.protobuf import json_format

    d = json_format.MessageToDict(outcome, preserving_proto_field_name=True)
    status = outcome.WhichOneof("status")
    d["outcome"] = "completed" if status == "completed_json" else status
    if status == "completed_json":
        d["result"] = json.loads(outcome.completed_json)
    return d


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proto", required=True, help="the proto/ directory of MCP Guard")
    parser.add_argument("--target", required=True, help="HOST:PORT of the gRPC API")
    parser.add_argument("--token", help="bearer token (static token or Kubernetes service-account token)")
    parser.add_argument("--code", help="the code to run")
    parser.add_argument("--code-file", help="a file with the code to run")
    parser.add_argument("--stream", action="store_true", help="use ExecuteStream")
    parser.add_argument("--list-tools", action="store_true", help="list the bound tools")
    parser.add_argument("--timeout", type=float, default=30.0, help="deadline in seconds")
    parser.add_argument("--gen-dir", help="where to generate the stubs (default: a temporary directory)")
    args = parser.parse_args()

    gen_dir = args.gen_dir or tempfile.mkdtemp(prefix="mcp-guard-py-")
    pb2, pb2_grpc = generate(args.proto, gen_dir)

    import grpc

    metadata = [("authorization", f"Bearer {args.token}")] if args.token else []
    with grpc.insecure_channel(args.target) as channel:
        stub = pb2_grpc.ExecutorStub(channel)
        try:
            if args.list_tools:
                response = stub.ListTools(pb2.ListToolsRequest(), metadata=metadata, timeout=args.timeout)
                for tool in response.tools:
                    print(json.dumps({"server": tool.server, "name": tool.name, "binding": tool.binding}))
                return 0
            code = args.code
            if args.code_file:
                with open(args.code_file, encoding="utf-8") as f:
                    code = f.read()
            request = pb2.ExecuteRequest(code=code or "")
            if args.stream:
                for event in stub.ExecuteStream(request, metadata=metadata, timeout=args.timeout):
                    kind = event.WhichOneof("event")
                    if kind == "outcome":
                        print(json.dumps({"event": "outcome", "outcome": outcome_dict(event.outcome)}))
                    else:
                        from google.protobuf import json_format

                        body = json_format.MessageToDict(getattr(event, kind), preserving_proto_field_name=True)
                        print(json.dumps({"event": kind, **body}))
            else:
                response = stub.Execute(request, metadata=metadata, timeout=args.timeout)
                print(json.dumps(outcome_dict(response.outcome)))
        except grpc.RpcError as e:
            print(json.dumps({"grpc_error": e.code().name, "message": e.details()}))
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
