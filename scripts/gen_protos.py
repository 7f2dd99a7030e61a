"""Regenerate the committed Python protobuf code from proto/.

Usage: python scripts/gen_protos.py [OUT_DIR]

With no argument the code is written into python/ (the package tree); the
staleness test passes a temporary directory and compares the results.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
# Packages whose modules are all generated; each gets an empty __init__.py.
GENERATED_PACKAGES = ("mt5exec/v1", "mt5exec/terminal/v1")


def proto_files() -> list[str]:
    return sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))


def generate(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *proto_files(),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for package in GENERATED_PACKAGES:
        init = out_dir / package / "__init__.py"
        init.write_text('"""Generated protobuf code; do not edit (scripts/gen_protos.py)."""\n')
    # protoc writes a _grpc module for every file, also for those without a service.
    for grpc_module in out_dir.glob("mt5exec/**/*_pb2_grpc.py"):
        if "Servicer" not in grpc_module.read_text():
            grpc_module.unlink()


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "python")
