"""`pixelrun setup`: make sure the system packages the engine needs are installed.

wgpu needs a Vulkan driver (Mesa's lavapipe, package mesa-vulkan-drivers, when there is
no GPU) and the window tests need a virtual X server (xvfb). Python packages come from
pip; these two come from apt-get, installed here only when missing.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys

# Debian package -> how to tell it is already present
REQUIREMENTS = {
    "mesa-vulkan-drivers": lambda: bool(
        glob.glob("/usr/share/vulkan/icd.d/lvp_icd*.json")
        or glob.glob("/usr/share/vulkan/icd.d/nvidia_icd*.json")
        or glob.glob("/etc/vulkan/icd.d/*.json")
    ),
    "xvfb": lambda: shutil.which("Xvfb") is not None,
}


def missing_packages() -> list[str]:
    return [pkg for pkg, present in REQUIREMENTS.items() if not present()]


def ensure_system_packages(quiet: bool = False) -> int:
    """Install missing packages with apt-get; 0 on success, 1 with a message if impossible."""
    missing = missing_packages()
    if not missing:
        if not quiet:
            print("pixelrun setup: system packages present (%s)" % ", ".join(REQUIREMENTS))
        return 0
    apt = shutil.which("apt-get")
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    sudo = [] if as_root else (["sudo", "-n"] if shutil.which("sudo") else None)
    if apt is None or sudo is None:
        print(
            "pixelrun setup: missing system packages: %s. Install them with your package "
            "manager (Debian/Ubuntu: apt-get install %s); without them wgpu finds no "
            "adapter on machines without a GPU and window tests cannot start."
            % (", ".join(missing), " ".join(missing)),
            file=sys.stderr,
        )
        return 1
    print("pixelrun setup: installing %s with apt-get" % " ".join(missing), flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(sudo + [apt, "update", "-qq"], check=True, env=env)
        subprocess.run(
            sudo + [apt, "install", "-y", "-qq", "--no-install-recommends", *missing],
            check=True,
            env=env,
        )
    except subprocess.CalledProcessError as exc:
        print(f"pixelrun setup: apt-get failed ({exc}); install {' '.join(missing)} by hand", file=sys.stderr)
        return 1
    still = missing_packages()
    if still:
        print(f"pixelrun setup: still missing after apt-get: {', '.join(still)}", file=sys.stderr)
        return 1
    return 0


RERUN_PEER = "rerun-sdk==0.41.0"


def ensure_rerun_venv(path: str, quiet: bool = False) -> int:
    """Create a virtual environment holding the real Rerun 0.41 (the side-by-side peer).

    It lives apart from pixelrun's environment (its `rerun` module must not shadow
    anything), is used only by cross-check tests and benchmarks, and is optional: when
    it cannot be made, those tests skip with that reason and this returns 0.
    """
    py = os.path.join(path, "bin", "python")
    check = [py, "-c", "import rerun, sys; sys.exit(rerun.__version__ != '0.41.0')"]
    if os.path.exists(py) and subprocess.run(check, capture_output=True).returncode == 0:
        if not quiet:
            print(f"pixelrun setup: {RERUN_PEER} present in {path}")
        return 0
    print(f"pixelrun setup: installing {RERUN_PEER} into {path} (the cross-check peer)", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", path], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", RERUN_PEER], check=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"pixelrun setup: could not install {RERUN_PEER} ({exc}); the Rerun cross-check "
              "tests will skip and say so", file=sys.stderr)
    return 0


def _run(args) -> int:
    rc = ensure_system_packages(args.quiet)
    if args.rerun_venv:
        rc = rc or ensure_rerun_venv(args.rerun_venv, args.quiet)
    return rc


def register(p: argparse.ArgumentParser) -> None:
    """Add the arguments of `pixelrun setup` to its parser (engine/cli/main.py makes it)."""
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--rerun-venv", metavar="DIR",
                   help=f"also make DIR a virtual environment with {RERUN_PEER} for cross-checks")
    p.set_defaults(func=_run)
