# What issue 29 still needs on the lent H200 (reports/runs/nvidia-h200/), as benchmarks/gpu.sh's job list: `TASK=issue29
# bash benchmarks/gpu.sh` sources this with PY, R (python -m mtlib report --execute, no tables) and KEY set, and
# each line it prints is one job, "name command". Ask the device tool for kind nvidia-h200: another GPU is another
# device key, and these rows complete the H200's table. No `encoder=`: on the device the shim resolves the default name
# to the fp16 copy (.gpu/minilm-fp16, gpu_pack.sh) and each run records that copy's sha256, while `encoder=<folder>`
# would file the runs under nvidia-h200+minilm-fp16, beside the H200's rows instead of in them (units.store_key).
# 1. 02 trained again: its sum run measures the noise floor from 16 batches per task while its checkpoint exists
#    (noise_batches); the committed H200 runs predate it. Its mean-reduction run (claim (f)) trains with it.
for s in 0 1 2; do
  echo "gs-$s $R --set precision=fp32 --profile cpu --only 02_gradient_surgery --seeds $s"
done
# 2. the pre-training control, each head set a headline row uses (the Makefile's `make control`, CONTROL_HEADS)
for s in 0 1 2; do
  for h in concat-mlp concat-cosine sbert-cosine; do
    echo "control-$s-$h $PY -m mtlib run pipeline=control para_head=${h%-*} sts_head=${h#*-} dropout=0 profile=cpu" \
         "precision=fp32 seed=$s progress=false resume=true out_dir=reports/runs/$KEY/control/seed$s/$h"
  done
done
