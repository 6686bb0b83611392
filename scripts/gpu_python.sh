#!/usr/bin/env bash
# The Python package's GPU check in one device call: linearard._C built in a CUDA build folder
# (BUILD_DIR: one another script built on this warm machine is reused, e.g. /tmp/ba-after of
# gpu_before_after.sh; otherwise a fresh Release sm_90a build), the package's tests with the GPU
# (python/tests, CUDA cases included), then bench/python_relation_kl.py: the Python op beside the C++
# benchmark and the paper's Triton kernel. Logs under $OUT; the table is printed last.
#
# Here (the dev machine), once:  bash scripts/device_deps.sh
#   the paper's kernel (public repository gracefulning/LinearARD, kernels/attention_KL) copied into
#   the ignored folder .paper-kernels/attention_KL (never committed)
# GPU machine (repo root; carry: .device-deps .paper-kernels):  bash scripts/gpu_python.sh
# Environment: BUILD_DIR, BENCH_T (1024,4096,8192).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${OUT:-$root/out}"; mkdir -p "$out"
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
build="${BUILD_DIR:-/tmp/build-python-gpu}"
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -G Ninja -DLINEARARD_CUDA=ON -DLINEARARD_CUDA_ARCHS=90a-real -DCMAKE_BUILD_TYPE=Release \
    -DLINEARARD_TESTS=OFF -DLINEARARD_PYTHON="$(command -v python3)" > "$out/py_configure.log" 2>&1 \
    || { echo "gpu_python: configure failed"; tail -20 "$out/py_configure.log"; exit 1; }
fi
# The module joins the existing build: linearard_ops' objects (CUDA kernels included) are reused.
cmake -S . -B "$build" -DLINEARARD_PYTHON_MODULE=ON >> "$out/py_configure.log" 2>&1 \
  || { echo "gpu_python: configure with the module failed"; grep -m3 -A8 -i "error" "$out/py_configure.log"; exit 1; }
ninja -C "$build" -j16 linearard linearard_python > "$out/py_build.log" 2>&1 \
  || { echo "gpu_python: build failed"; grep -m3 -A12 "error" "$out/py_build.log" | head -40; exit 1; }
stamp "built linearard._C"
# The package as pip would install it: python/linearard with the module beside it.
pkg=/tmp/linearard-pkg; rm -rf "$pkg" && mkdir -p "$pkg" && cp -a python/linearard "$pkg/" \
  && cp "$build"/python/_C*.so "$pkg/linearard/" || { echo "gpu_python: no _C module in $build/python"; exit 1; }
export PYTHONPATH="$pkg"
# A module that links a static libstdc++ of its own (no libstdc++.so.6 among its DT_NEEDED) crashes
# on import beside libtorch's; say which libstdc++ the module and the compiler have when it fails.
echo "module needs: $(readelf -d "$pkg"/linearard/_C*.so | grep -o 'libstdc++[^]]*' || echo 'no shared libstdc++')"
python3 -X faulthandler -c "import linearard, torch; assert linearard._C.has_cuda(), 'a CPU-only module'; print('linearard._C with CUDA, torch', torch.__version__)" \
  || { grep -m1 "links" "$out/py_configure.log"; ls "$(dirname "$(command -v c++)")"/../lib64 2>/dev/null | grep stdc; exit 1; }
rc=0
LINEARARD_BIN="$build/linearard" python3 -m pytest -q -p no:cacheprovider python/tests -rs > "$out/pytest_gpu.log" 2>&1 || rc=1
tail -n 15 "$out/pytest_gpu.log"
stamp "package tests done (rc $rc)"
python3 bench/python_relation_kl.py --bin "$build/linearard" --paper-kernels .paper-kernels --T "${BENCH_T:-1024,4096,8192}" \
  --csv "$out/python_relation_kl.csv" 2>&1 | tee "$out/python_bench.log"
[ "${PIPESTATUS[0]}" = 0 ] || rc=1
stamp "done (rc $rc)"
exit $rc
