#!/usr/bin/python3
"""Lays out the importable ``kvtier`` package: generates the protobuf and gRPC stubs of proto/
(Debian's protoc with grpc_python_plugin) into OUT/kvtier/v1/ and OUT/kvtier/_status_pb2.py
(google.rpc.Status, kept inside the package so it does not claim the shared ``google``
namespace), and with --copy_sources also copies the package's sources (paths relative to
client/python/) into OUT/. --list_protos prints the proto files it compiles (relative to
proto/), for CMake.

  build_package.py --proto_dir=proto --out=build/client/python [--copy_sources FILE...]
  build_package.py --list_protos

CMake's kvtier_python target runs it for the tests (PYTHONPATH=OUT); setup.py calls
generate_stubs() when pip builds the package.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
# The proto files the client speaks (relative to proto/).
PROTOS = [
    "kvtier/v1/admin.proto",
    "kvtier/v1/attention.proto",
    "kvtier/v1/common.proto",
    "kvtier/v1/errors.proto",
    "kvtier/v1/session.proto",
]
STATUS_PROTO = "google/rpc/status.proto"


def generate_stubs(proto_dir: str, out: str, protoc: str = "protoc",
                   plugin: str = "/usr/bin/grpc_python_plugin") -> None:
    """Generates the stubs of PROTOS and google.rpc.Status into ``out``/kvtier/."""
    for tool in (protoc, plugin):
        if shutil.which(tool) is None:
            sys.exit(f"build_package.py: {tool} not found (Debian packages protobuf-compiler, "
                     "protobuf-compiler-grpc)")
    with tempfile.TemporaryDirectory() as gen:
        subprocess.run([protoc, f"-I{proto_dir}", f"--python_out={gen}",
                        f"--grpc_python_out={gen}", f"--plugin=protoc-gen-grpc_python={plugin}",
                        *PROTOS, STATUS_PROTO], check=True, cwd=proto_dir)
        v1 = os.path.join(out, "kvtier", "v1")
        os.makedirs(v1, exist_ok=True)
        for name in sorted(os.listdir(os.path.join(gen, "kvtier", "v1"))):
            shutil.copyfile(os.path.join(gen, "kvtier", "v1", name), os.path.join(v1, name))
        shutil.copyfile(os.path.join(gen, "google", "rpc", "status_pb2.py"),
                        os.path.join(out, "kvtier", "_status_pb2.py"))


def copy_sources(out: str, sources: list) -> None:
    """Copies ``sources`` (relative to client/python/) into ``out``."""
    for name in sources:
        target = os.path.join(out, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(HERE, name), target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list_protos", action="store_true",
                        help="print the proto files compiled, and exit")
    parser.add_argument("--proto_dir", help="the repository's proto/ folder")
    parser.add_argument("--out", help="where kvtier/ goes")
    parser.add_argument("--protoc", default="protoc")
    parser.add_argument("--plugin", default="/usr/bin/grpc_python_plugin")
    parser.add_argument("--copy_sources", nargs="*", default=[], metavar="FILE",
                        help="also copy these sources (relative to client/python/)")
    args = parser.parse_args()
    if args.list_protos:
        print(";".join(PROTOS + [STATUS_PROTO]))
        return
    if not args.proto_dir or not args.out:
        parser.error("--proto_dir and --out are required")
    proto_dir = os.path.abspath(args.proto_dir)
    out = os.path.abspath(args.out)
    copy_sources(out, args.copy_sources)
    generate_stubs(proto_dir, out, args.protoc, args.plugin)


if __name__ == "__main__":
    main()
