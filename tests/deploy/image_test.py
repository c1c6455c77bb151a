#!/usr/bin/env python3
"""The images' recipes (deploy/docker/Dockerfile.cpu, Dockerfile.cuda), checked
as far as a machine without a container runtime allows: every command they
run is a script CI runs too, here on the same Debian 12 packages.

- Both stages start FROM debian:12; the final stage runs as a non-root user,
  under tini, with deploy/docker/entrypoint.sh as the entrypoint (run as a
  process by entrypoint_test.py), and copies only the binary, the entrypoint
  and config/brigade.conf out of the build.
- Every script a RUN line calls exists, and each is run here as the image
  runs it: `deploy/setup.sh --build` finds its packages installed (CI's
  set-up installs them), the image's configure (Release, no tests, its CUDA
  setting) succeeds and has a `brigade` target, and
  `deploy/docker/runtime-packages.sh` resolves CI's binary's shared libraries
  to installed Debian packages.
- The CUDA recipe installs NVIDIA's keyring for Debian 12 in both stages and
  builds with -DBRIGADE_CUDA=ON.

usage: image_test.py BRIGADE_BINARY
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DOCKER = os.path.join(ROOT, "deploy", "docker")
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def stages(path):
    """[(from, [(instruction, args)])] with continuation lines joined."""
    text = re.sub(r"\\\n", " ", open(path).read())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        ins, _, args = line.partition(" ")
        if ins == "FROM":
            out.append((args.split()[0], []))
        elif out:
            out[-1][1].append((ins, args))
    return out


def main():
    brigade = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "app", "brigade")
    for name, cuda in (("Dockerfile.cpu", False), ("Dockerfile.cuda", True)):
        st = stages(os.path.join(DOCKER, name))
        check(len(st) == 2 and all(s[0] == "debian:12" for s in st), f"{name}: two stages, both FROM debian:12")
        build, final = st[0][1], st[-1][1]
        runs = " ".join(a for i, a in build if i == "RUN")
        scripts = re.findall(r"(deploy/[\w/.-]+\.sh)", runs)
        check(scripts and all(os.path.exists(os.path.join(ROOT, s)) for s in scripts),
              f"{name}: the build stage runs scripts of the repository ({', '.join(scripts)})")
        check("deploy/setup.sh --build" in runs and "deploy/build.sh brigade" in runs and
              "runtime-packages.sh /build/app/brigade" in runs,
              f"{name}: it installs with setup.sh --build, builds with build.sh and lists runtime packages")
        want_cuda = "-DBRIGADE_CUDA=ON" if cuda else "-DBRIGADE_CUDA=OFF"
        check(want_cuda in runs and "-DBRIGADE_TESTS=OFF" in runs, f"{name}: configured with {want_cuda}, no tests")
        if cuda:
            keyring = "developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring"
            check(keyring in open(os.path.join(DOCKER, name)).read() and
                  any("dpkg -i /tmp/cuda-keyring.deb" in a for i, a in final if i == "RUN"),
                  f"{name}: NVIDIA's Debian 12 repository in both stages")
        users = [a for i, a in final if i == "USER"]
        check(users and not users[-1].startswith(("0", "root")), f"{name}: the final stage runs as a non-root user "
                                                                  f"({users})")
        entry = [a for i, a in final if i == "ENTRYPOINT"]
        check(entry == ['["/usr/bin/tini", "--", "/usr/local/bin/brigade-entrypoint"]'],
              f"{name}: the entrypoint is brigade-entrypoint under tini ({entry})")
        copies = [a for i, a in final if i == "COPY"]
        check(any("deploy/docker/entrypoint.sh /usr/local/bin/brigade-entrypoint" in c for c in copies) and
              any("/build/app/brigade /usr/local/bin/brigade" in c for c in copies),
              f"{name}: it copies the binary and deploy/docker/entrypoint.sh")
        installs = " ".join(a for i, a in final if i == "RUN")
        check("tini" in installs and "$(cat /tmp/runtime-packages.txt)" in installs and "--no-install-recommends" in installs,
              f"{name}: the final stage installs tini and the runtime packages only")

    r = subprocess.run(["bash", os.path.join(ROOT, "deploy", "setup.sh"), "--build"], capture_output=True, text=True)
    check(r.returncode == 0 and "packages present" in r.stdout, f"deploy/setup.sh --build: {r.stdout.strip()}")

    # The image's configure (the CPU image's arguments), without building.
    tmp = tempfile.mkdtemp(prefix="brigade-image-")
    try:
        args = re.search(r'BRIGADE_CMAKE_ARGS="([^"]+)"', open(os.path.join(DOCKER, "Dockerfile.cpu")).read()).group(1)
        r = subprocess.run(["cmake", "-S", ROOT, "-B", tmp, "-G", "Ninja", "-DBRIGADE_REQUIRE_SERVER_DEPS=ON"] +
                           args.split(), capture_output=True, text=True)
        ok = r.returncode == 0
        if ok:
            targets = subprocess.run(["ninja", "-C", tmp, "-t", "targets", "all"], capture_output=True, text=True).stdout
            ok = re.search(r"^app/brigade:", targets, re.M) is not None and "runtime_test" not in targets
        check(ok, f"the CPU image's configure ({args}) succeeds, with brigade and without the tests" +
              ("" if r.returncode == 0 else ": " + r.stderr[-500:]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    r = subprocess.run(["bash", os.path.join(DOCKER, "runtime-packages.sh"), "--skip", "/usr/local/cuda", brigade],
                       capture_output=True, text=True)
    pkgs = r.stdout.split()
    installed = [subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", p], capture_output=True,
                                text=True).stdout == "installed" for p in pkgs]
    check(r.returncode == 0 and {"libcaf-core0.17", "libcaf-io0.17", "libhiredis0.14"} <= set(pkgs) and all(installed),
          f"runtime-packages.sh resolves the binary's libraries to installed Debian packages ({' '.join(pkgs)}"
          f"{'' if r.returncode == 0 else ': ' + r.stderr.strip()})")
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
