#!/bin/bash
# gendr on Slurm: plan, one array task per segment, then a join that starts
# only when every array task succeeded. See deploy/README.md.
#
#   deploy/slurm/gendr-array.sh IN OUT JOB_DIR [gendr plan options, e.g. -m default]
#
# IN, OUT and JOB_DIR must be on a file system every node mounts at the same
# path, and gendr must be on PATH there (or set GENDR). run-segment is
# idempotent: a requeued or re-submitted task skips a segment already done.
#
# Paths reach the tasks as arguments of this same script (sbatch keeps a copy
# of it and passes them on as "$@"), never as shell text: a file name is
# data, whatever quotes or semicolons it holds.
set -euo pipefail

# On the compute node: run the task's command as given.
if [ "${1-}" = --task ]; then
    shift
    exec "$@"
fi

if [ $# -lt 3 ]; then
    echo "usage: $0 IN OUT JOB_DIR [gendr plan options]" >&2
    exit 2
fi
in=$1 out=$2 job=$3
shift 3
gendr=${GENDR:-gendr}
self=$(readlink -f -- "$0")

"$gendr" plan "$in" --job "$job" "$@"
segments=$("$gendr" job info "$job" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["segment_count"])')

# One task per segment: SLURM_ARRAY_TASK_ID is 0 … segments-1.
# Add e.g. --gres=gpu:1 for a GPU plan (--provider cuda).
array=$(sbatch --parsable --job-name=gendr-seg --array="0-$((segments - 1))" \
    --cpus-per-task=4 --mem=4G --requeue \
    "$self" --task "$gendr" run-segment -q "$job" --index-from SLURM_ARRAY_TASK_ID)
array=${array%%;*} # --parsable prints "id;cluster" on a multi-cluster set-up

# afterok on an array job: only when every task ended with exit 0.
sbatch --parsable --job-name=gendr-join --dependency="afterok:$array" \
    --cpus-per-task=2 --mem=2G \
    "$self" --task "$gendr" join -q "$job" "$out"
echo "submitted: $segments segment tasks as job $array, then the join" >&2
