"""wasi-testsuite runtime adapter for wasmbay.

The suite's own executor (`runner/run-suites` in the shared wasi-testsuite copy) loads this
module and asks it how to start each case; wasmbay tells WASI releases apart by itself, so the
command line only says what the case may reach. A `wasi:http/service` case is served with
`wasmbay serve` on a free loopback port, which it names on its first stderr line (where the
executor reads it); the executor's SIGINT at the end drains it and it exits 0:

    python3 run-suites --runtime-adapter conformance/adapters/wasmbay.py SUITE_DIR...

Environment: WASMBAY (the binary, default `wasmbay` on PATH; may carry options, e.g.
"wasmbay --quiet") and WASMBAY_ENGINE (default wasmtime).
"""
import os
import shlex
import subprocess
from typing import Dict, List, Optional, Tuple

_COMMAND = shlex.split(os.environ.get("WASMBAY", "wasmbay"))
_ENGINE = os.environ.get("WASMBAY_ENGINE", "wasmtime")


def get_name() -> str:
    return "wasmbay"


def get_version() -> str:
    # `wasmbay --version` prints "wasmbay 0.1.0 (engines: ...)": the second word.
    out = subprocess.run(_COMMAND[:1] + ["--version"], check=True,
                         capture_output=True, encoding="utf-8").stdout
    return out.split()[1]


def get_wasi_versions() -> List[str]:
    return ["wasm32-wasip1", "wasm32-wasip3"]


def get_wasi_worlds() -> List[str]:
    return ["wasi:cli/command", "wasi:http/service"]


def compute_argv(test_path: str,
                 args_env_root: Tuple[List[str], Dict[str, str], Optional[str]],
                 proposals: List[str],
                 wasi_world: str,
                 wasi_version: str) -> List[str]:
    args, env, root = args_env_root
    served = wasi_world == "wasi:http/service"
    argv = list(_COMMAND) + ["serve" if served else "run", "--engine", _ENGINE]
    if served:
        argv += ["--listen", "127.0.0.1:0"]
    # Both proposals reach the network: sockets directly, http by outgoing requests.
    if "sockets" in proposals or "http" in proposals:
        argv.append("--inherit-network")
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    if root:
        argv += ["--dir", f"{root}::/"]
    # `--` ends wasmbay's options: what follows the module is the guest's (`serve` refuses
    # any: a handler has no command line, and a case giving one should fail, not lose it).
    argv += ["--", test_path] + list(args)
    return argv
