#!/bin/bash
# gendr on Slurm: plan, one array task per segment, then a join that starts
# only when every array task succeeded. See deploy/README.md.
#
#   deploy/slurm/gendr-array.sh IN OUT JOB_DIR [gendr plan options, e.g. -m default]
#
# IN, OUT and JOB_DIR must be on a file system every node mounts at the same
# path, and gendr must be on PATH there (or set GENDR). run-segment is
# idempotent: a requeued or re-submitted task skips a segment already done.
set -euo pipefail

if [ $# -lt 3 ]; then
    echo "usage: $0 IN OUT JOB_DIR [gendr plan options]" >&2
    exit 2
fi
in=$1 out=$2 job=$3
shift 3
gendr=${GENDR:-gendr}

"$gendr" plan "$in" --job "$job" "$@"
segments=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["segments"]))' "$job/manifest.json")

# One task per segment: SLURM_ARRAY_TASK_ID is 0 … segments-1.
# Add e.g. --gres=gpu:1 for a GPU plan (--provider cuda).
array=$(sbatch --parsable --job-name=gendr-seg --array="0-$((segments - 1))" \
    --cpus-per-task=4 --mem=4G --requeue \
    --wrap="'$gendr' run-segment -q '$job' --index-from SLURM_ARRAY_TASK_ID")

# afterok on an array job: only when every task ended with exit 0.
sbatch --parsable --job-name=gendr-join --dependency="afterok:$array" \
    --cpus-per-task=2 --mem=2G \
    --wrap="'$gendr' join -q '$job' '$out'"
echo "submitted: $segments segment tasks as job $array, then the join" >&2
