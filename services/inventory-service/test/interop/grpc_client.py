"""Calls a gRPC server with grpcio, the C-core gRPC implementation.

Reads from stdin a JSON object {"target": "host:port", "metadata": [[key,
value], ...], "calls": [...]}, the metadata sent with every call, where
each call is {"method": "/package.Service/Method", "request": base64 of the
serialized request message} and, for a server-streaming method,
"stream_messages": how many responses to read before cancelling. Messages
stay opaque bytes, so no generated Python code is needed.

Prints a JSON list with, for each call, {"code": status code name,
"details": status message, "responses": [base64 of each response]}.
"""

import base64
import json
import sys

import grpc


def call(channel, spec, metadata):
    request = base64.b64decode(spec["request"])
    count = spec.get("stream_messages")
    responses = []
    try:
        if count is None:
            responses.append(channel.unary_unary(spec["method"])(request, timeout=10, metadata=metadata))
        else:
            stream = channel.unary_stream(spec["method"])(request, timeout=10, metadata=metadata)
            for response in stream:
                responses.append(response)
                if len(responses) == count:
                    stream.cancel()
                    break
        code, details = grpc.StatusCode.OK, ""
    except grpc.RpcError as error:
        code, details = error.code(), error.details()
    return {
        "code": code.name,
        "details": details,
        "responses": [base64.b64encode(r).decode("ascii") for r in responses],
    }


def main():
    spec = json.load(sys.stdin)
    with grpc.insecure_channel(spec["target"]) as channel:
        metadata = [tuple(pair) for pair in spec.get("metadata", [])]
        results = [call(channel, c, metadata) for c in spec["calls"]]
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
