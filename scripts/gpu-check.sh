#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, CUDA (nvcc, cuBLAS) and
# PyTorch, without Go or a network, it builds pdmflow's CUDA binary with the
# packed toolchain (scripts/device-pack.sh, carried as .device/), runs the
# GPU tests (every op and whole batches against the CPU reference), then the
# GPU benchmark against PyTorch on the same GPU, and writes a log and a JSON
# summary, in about 5 minutes:
#
#   source .device/env.sh && scripts/gpu-check.sh      (or make gpu-check)
#
# Results go to $OUT when set (the device tool's output folder), else
# out/gpu-check: gpu-check.log, tests.jsonl (go test -json), bench-*.json,
# summary.json. The exit status is 0 only when the build and every test
# passed; benchmark failures are recorded in the summary.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out/gpu-check}
mkdir -p "$out"
exec > >(tee "$out/gpu-check.log") 2>&1
t0=$(date +%s)
step() { echo; echo "== +$(($(date +%s) - t0))s $*"; }
build_ok=false tests_ok=false

if ! command -v go >/dev/null 2>&1; then
	if [ -f .device/env.sh ]; then
		# shellcheck disable=SC1091
		source .device/env.sh
	else
		echo "gpu-check: no Go on PATH and no .device/ (run scripts/device-pack.sh where Go is and carry .device)"
		exit 2
	fi
fi

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || echo "nvidia-smi failed"
nvcc --version 2>&1 | tail -1
go version
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")' 2>&1 || true
nproc

step "kernels to PTX, the pdmcuda binary"
if nvcc -x cu -ptx -arch="${GPU_ARCH:-compute_70}" -o gpu/kernels.ptx gpu/kernels.cu.h &&
	timeout 300 go build -tags pdmcuda -o bin/pdmflow-cuda ./cmd/pdmflow; then
	build_ok=true
	bin/pdmflow-cuda version 2>/dev/null || true
fi

if $build_ok; then
	step "GPU tests (pdmcuda): every op, whole batches, reload, the producer on the GPU"
	timeout 300 go test -tags pdmcuda -count=1 -json ./gpu/ ./producer/ \
		-run 'TestOps|TestPDMBatch|TestReload|TestFixedSamplers|TestOpen|OnGPU' > "$out/tests.jsonl"
	rc=$?
	# The verdicts and every logged line, readable.
	python3 - "$out/tests.jsonl" <<'PY' || grep -E '"Action":"(pass|fail|skip)"' "$out/tests.jsonl"
import json, sys
for line in open(sys.argv[1]):
    try: e = json.loads(line)
    except ValueError: continue
    if e.get("Action") == "output" and e.get("Test"): sys.stdout.write(e["Output"])
    elif e.get("Action") in ("pass", "fail", "skip") and e.get("Test"): print("%s %s %s" % (e["Action"].upper(), e["Package"].split("/")[-1], e["Test"]))
PY
	[ $rc -eq 0 ] && tests_ok=true

	step "W1 on the GPU against PyTorch on the same GPU, fp32 / tf32 / bf16"
	for prec in fp32 tf32 bf16; do
		timeout 100 bin/pdmflow-cuda bench --device cuda:0 --precision "$prec" --workloads w1 --iters 5 --gpu-max-batch 1024 --python "$(command -v python3)" --json \
			> "$out/bench-w1-$prec.json" || echo "bench w1 $prec failed (status $?)"
	done
	step "the producer on the GPU: generation into messages, publishing to an embedded JetStream"
	timeout 100 bin/pdmflow-cuda bench --device cuda:0 --precision fp32 --workloads w3 --no-torch --iters 3 --json \
		> "$out/bench-w3.json" || echo "bench w3 failed (status $?)"
fi

step "summary"
python3 - "$out" "$build_ok" "$tests_ok" "$(($(date +%s) - t0))" <<'PY' || echo "{\"build_ok\": $build_ok, \"tests_ok\": $tests_ok}" > "$out/summary.json"
import glob, json, os, sys
out, build_ok, tests_ok, secs = sys.argv[1], sys.argv[2] == "true", sys.argv[3] == "true", int(sys.argv[4])
tests = {}
try:
    for line in open(os.path.join(out, "tests.jsonl")):
        try: e = json.loads(line)
        except ValueError: continue
        if e.get("Test") and e.get("Action") in ("pass", "fail", "skip"):
            tests[e["Package"].split("/")[-1] + "." + e["Test"]] = e["Action"]
except OSError:
    pass
bench = {}
for f in sorted(glob.glob(os.path.join(out, "bench-*.json"))):
    try: bench[os.path.basename(f)[:-5]] = json.load(open(f))
    except (OSError, ValueError) as err: bench[os.path.basename(f)[:-5]] = {"error": str(err)}
s = {"build_ok": build_ok, "tests_ok": tests_ok, "seconds": secs,
     "tests": {a: sum(1 for v in tests.values() if v == a) for a in ("pass", "fail", "skip")},
     "failed": sorted(k for k, v in tests.items() if v == "fail"), "bench": bench}
json.dump(s, open(os.path.join(out, "summary.json"), "w"), indent=1)
print(json.dumps({k: s[k] for k in ("build_ok", "tests_ok", "seconds", "tests", "failed")}))
PY
echo "results in $out"
$build_ok && $tests_ok
