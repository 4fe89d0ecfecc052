#!/usr/bin/env bash
# One call on a lent GPU machine (the workplace's `device` tool), from the repository root, with `.gpu` carried
# (benchmarks/gpu_pack.sh builds it): a seconds-long preflight, then N jobs at a time on the one GPU.
# Jobs still running DEADLINE s after the start are stopped; finished runs (no checkpoints), executed notebooks,
# figures and logs come back as tarballs under $OUT, and what resumes each unfinished run (its config.json, log and
# checkpoints) as gpu-resume.tgz: the next call with RESUME=<that file> carried puts them back, and its jobs go on
# from the checkpoints (resume=true). JOBS=<file> replaces the job list (one "name command" a line); TASK=<name>
# takes benchmarks/gpu-jobs/<name>.sh's.
# Ray cannot come along (64 MiB travel), so this keeps its own small runner; docs/gpu.md has every variable.
# Measured on one H200 (reports/runs/nvidia-h200/NOTES.md): 2026-11-28, 10 jobs at once, a 700-step rung took 2.6 min each;
# 2026-11-30, 8 at once, 05_novel on the paper profile trained all its 5,977 steps and was stopped at 516 s while
# writing its predictions. So the default list below is what is left, with few jobs beside the paper run.
set -u
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
PY=${PY:-python3}; OUT=${OUT:-/tmp/out}; DEADLINE=${DEADLINE:-500}; N=${N:-10}; TESTW=${TESTW:-4}
MARGIN=${MARGIN:-60}   # no job starts later than DEADLINE - MARGIN s: the time left to pack
mkdir -p $OUT/logs
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if [ -z "${SKIP_WHL:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD/.gpu/shim:$PWD
  mkdir -p /tmp/data && tar xzf .gpu/data.tgz -C /tmp/data && export MTLIB_DATA_DIR=/tmp/data
fi
ENC=${ENC:-.gpu/minilm-fp16}
{ echo "start $(date -u +%FT%TZ), mtlib commit $(cat .gpu/COMMIT 2>/dev/null)"; nvidia-smi; lscpu | head -20
  [ "${ENVINFO:-1}" = 1 ] && $PY -c "import torch, transformers, torchjd, papermill, ipykernel; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0), 'bf16', torch.cuda.is_bf16_supported()); print('transformers', transformers.__version__)"
} > $OUT/env.txt 2>&1
cat $OUT/env.txt | tail -3
# preflight, seconds: both precisions through the whole novel pipeline on the smoke profile; stop here if it fails
for p in ${PREFLIGHT-fp32}; do
  $PY -m mtlib run pipeline=novel profile=smoke precision=$p encoder=$ENC out_dir=/tmp/pre-$p progress=false \
    > $OUT/logs/preflight-$p.log 2>&1 || { echo "PREFLIGHT $p FAILED at $(el) s"; tail -30 $OUT/logs/preflight-$p.log; exit 4; }
done
echo "preflight ok at $(el) s"
# the jobs: one line each, run N at a time in this order; each writes its own log
R="$PY -m mtlib report --execute --readme '' --results /tmp/results"
KEY=${KEY:-$($PY -c "from mtlib.store import here; print(here())")}   # this GPU's part of the run store
STORES=${STORES:-reports/runs/$KEY reports/runs-paper}        # where the jobs' runs go: what comes back
# RESUME=<a gpu-resume.tgz that an earlier call sent back, or the prefix of its .NN parts>: its unfinished runs are
# put back where they were (paths as packed), so that the jobs that train them go on from their checkpoints
if [ -n "${RESUME:-}" ]; then
  cat "$RESUME"* | tar xzPf - || { echo "RESUME=$RESUME: cannot unpack"; exit 5; }
  echo "resumed from $RESUME: $(cat "$RESUME"* | tar tzPf - | grep -c '/config.json$') unfinished run(s) put back"
fi
{
  echo "paper05 $R --store reports/runs-paper --set encoder=$ENC --profile paper --only 05_novel-no-dropout --seeds 0"
  # the image lacks cvxpy and clarabel (CAGrad's solvers, too large to carry): their tests are left out
  echo "tests $PY -m pytest -q -rfE -n $TESTW --dist loadgroup -p no:cacheprovider --nbval-lax tests notebooks --ignore tests/test_lab.py -k not(cagrad) --deselect tests/test_config.py::test_combine_options_are_validated_for_the_chosen_method --deselect tests/test_surgery.py::test_options_have_paper_defaults_and_can_be_set --deselect tests/test_surgery.py::test_gram_is_fp64_from_fp64_inputs_so_fp16_cannot_overflow"
  # 02's mean-reduction runs (claim f), the same config as the notebook's (02's sum runs are in reports/runs/$KEY;
  # execute the notebook here after: python -m mtlib report --execute --only 02_gradient_surgery ...)
  for s in 0 1 2; do echo "opt-gsmean-$s $PY -m mtlib run pipeline=multitask combine=pcgrad reduction=mean sts_head=mlp dropout=0.1 profile=cpu precision=fp32 encoder=$ENC seed=$s progress=false resume=true out_dir=reports/runs/$KEY/02_gradient_surgery/seed$s/pcgrad_mean"; done
} > /tmp/jobs.txt
[ -n "${JOBS:-}" ] && cp "$JOBS" /tmp/jobs.txt
# TASK=<name>: the job list of benchmarks/gpu-jobs/<name>.sh (what an issue still needs on a GPU), printed by it
[ -n "${TASK:-}" ] && { . benchmarks/gpu-jobs/$TASK.sh > /tmp/jobs.txt || exit 6; }
# a job named opt-* starts only before OPT_BY s (default 250): one that could not finish would slow the others
# A job still running at DEADLINE gets SIGTERM, to its whole process group (a papermill kernel too), and SIGKILL 15 s
# later. mtlib handles neither: a run stops where it is, its last checkpoint (every checkpoint_every steps and at each
# epoch's end, written atomically) and config.json stay, and gpu-resume.tgz below takes them back.
runjob() { name=$1; shift; t=$(( $(date +%s) - T0 )); [ $t -gt $(( DEADLINE - MARGIN )) ] && { echo "skip $name at $t s"; return; }
  case $name in opt-*) [ $t -gt ${OPT_BY:-250} ] && { echo "skip $name at $t s (optional)"; return; };; esac
  echo "start $name at $t s"; timeout -k 15 $(( DEADLINE - t )) "$@" > $OUT/logs/$name.log 2>&1; echo "end $name rc $? at $(( $(date +%s) - T0 )) s"; }
export -f runjob; export T0 DEADLINE MARGIN OUT OPT_BY
xargs -P $N -L 1 bash -c 'runjob "$@"' _ < /tmp/jobs.txt 2>&1 | tee $OUT/logs/jobs.txt
nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv >> $OUT/env.txt 2>&1
# finished runs (metrics.json written at the end of a run), without checkpoints
find $STORES -name metrics.json 2>/dev/null | sed 's|/metrics.json||' > /tmp/done.txt
echo "finished runs: $(wc -l < /tmp/done.txt)"; cat /tmp/done.txt
tar czf $OUT/gpu-runs.tgz --exclude=checkpoints --exclude=notebooks --exclude=figures $STORES 2>/dev/null
tar czf $OUT/gpu-notebooks.tgz $(find $STORES -maxdepth 2 -type d \( -name notebooks -o -name figures \) 2>/dev/null) 2>/dev/null
tar czf $OUT/logs.tgz -C $OUT logs && rm -rf $OUT/logs
# unfinished runs (a config.json, no metrics.json: stopped mid-training, or while writing predictions): config.json,
# run.json, metrics.jsonl and checkpoints/ (resume.pt and the finished stages' weights) -> gpu-resume.tgz, in 15 MiB
# parts (.00, .01, ...) when larger, within what comes back (8 files, 64 MiB). Where the checkpoints do not fit (a
# MiniLM run's mid-stage resume.pt holds its weights and Adam's two moments), the rest comes back, and such
# a run starts over.
find $STORES -name config.json 2>/dev/null | while read -r c; do [ -f "${c%/*}/metrics.json" ] || echo "${c%/*}"; done > /tmp/unfinished.txt
if [ -s /tmp/unfinished.txt ]; then
  echo "unfinished runs: $(wc -l < /tmp/unfinished.txt)"; cat /tmp/unfinished.txt
  pick() { while read -r d; do for f in config.json run.json metrics.jsonl "$@"; do [ -e "$d/$f" ] && echo "$d/$f"; done; done < /tmp/unfinished.txt; }
  MiB=1048576; parts=$(( 8 - $(ls $OUT | wc -l) )); room=$(( 63 * MiB - $(du -cb $OUT/* | tail -1 | cut -f1) ))
  [ $(( parts * 15 * MiB )) -lt $room ] && room=$(( parts * 15 * MiB ))
  pick checkpoints | tar czPf /tmp/resume.tgz -T -
  if [ $(stat -c %s /tmp/resume.tgz) -gt $room ]; then
    echo "their checkpoints ($(( $(stat -c %s /tmp/resume.tgz) / MiB )) MiB packed) do not fit what comes back ($(( room / MiB )) MiB): config and logs alone; they will start over"
    pick | tar czPf /tmp/resume.tgz -T -
  fi
  if [ $(stat -c %s /tmp/resume.tgz) -gt $(( 15 * MiB )) ]; then split -b 15M -d /tmp/resume.tgz $OUT/gpu-resume.tgz.
  else cp /tmp/resume.tgz $OUT/gpu-resume.tgz; fi
  echo "gpu-resume.tgz: carry it to the next call and give RESUME=<its path> to go on with them"
fi
ls -la $OUT; echo "all done at $(el) s"
